/*
 * size.h - the one parser of byte sizes typed by people (environment knobs,
 * bench options): decimal digits with an optional binary suffix, k/K = KiB,
 * m/M = MiB, g/G = GiB ("65536", "64K", "1M", "2g"). No sign, no spaces, no
 * fractions; a value that does not fit size_t is an error, never wrapped.
 */
#ifndef TKV_BASE_SIZE_H
#define TKV_BASE_SIZE_H

#include <stddef.h>

/* 0 and *out set, or -EINVAL (and *out unchanged). */
int tkv__parse_bytes(const char *s, size_t *out);

#endif
