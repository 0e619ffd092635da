"""A --logger-class as users write them: the built-in logger with one method overridden."""

from unicorn_aio.log.logger import Logger


class TaggingLogger(Logger):
    def access(self, environ, status, response_headers, sent, request_time):
        self.error_log.info("custom access %s %s", environ["PATH_INFO"], status)
