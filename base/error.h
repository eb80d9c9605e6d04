/*
 * error.h - the per-thread last-error message behind tkv_last_error().
 *
 * Every public function that fails calls tkv__fail() once, with the negative
 * errno it returns and a message naming what was wrong; the return value is
 * passed through so a failure reads `return tkv__fail(-EINVAL, "...")`.
 */
#ifndef TKV_BASE_ERROR_H
#define TKV_BASE_ERROR_H

__attribute__((format(printf, 2, 3))) int tkv__fail(int err, const char *fmt, ...);
void tkv__clear_error(void);

#endif
