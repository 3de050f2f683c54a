/*
 * Logging for the broker: one macro family that adds the function name,
 * written to stderr with a UTC timestamp and a level.
 */
#ifndef PODGATE_LOG_H
#define PODGATE_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages above this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);

/*
 * Write one line: the formatted message with its control characters and
 * backslashes escaped (log_escape), so that no field can forge a line.
 */
void log_write(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The escaping log_write applies; returns the length written to out. */
size_t log_escape(const char *msg, char *out, size_t outlen);

#define log_error(...) log_write(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __func__, __VA_ARGS__)

/* Same, with ": " and strerror(-err) appended (err is a negative errno). */
#define log_error_r(err, fmt, ...) \
	log_write(LOG_ERROR, __func__, fmt ": %s", ##__VA_ARGS__, strerror(-(err)))
#define log_warn_r(err, fmt, ...) \
	log_write(LOG_WARN, __func__, fmt ": %s", ##__VA_ARGS__, strerror(-(err)))

#endif
