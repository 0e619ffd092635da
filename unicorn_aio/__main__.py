from unicorn_aio.cli import main

main()
