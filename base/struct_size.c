/*
 * struct_size.c - the struct_size rule (struct_size.h).
 */
#include "base/struct_size.h"

#include <errno.h>
#include <string.h>

#include "base/error.h"

static size_t size_of(const void *user)
{
	size_t n;
	memcpy(&n, user, sizeof(n)); /* struct_size is every struct's first field */
	return n;
}

int tkv__struct_check(const void *user, size_t first, size_t cur, tkv__struct_dir dir,
		      const char *what)
{
	if (!user)
		return tkv__fail(-EINVAL, "%s: NULL", what);
	size_t n = size_of(user);
	if (n < first)
		return tkv__fail(-EINVAL,
				 "%s.struct_size: %zu is smaller than the first released layout "
				 "(%zu bytes); set it to sizeof(%s)",
				 what, n, first, what);
	if (dir == TKV__STRUCT_IN)
		for (const unsigned char *p = (const unsigned char *)user + cur,
					 *end = (const unsigned char *)user + n;
		     p < end; p++)
			if (*p)
				return tkv__fail(-E2BIG,
						 "%s: byte %zu is set, past this library's layout "
						 "(%zu bytes): a field from a newer tierkv.h",
						 what, (size_t)(p - (const unsigned char *)user), cur);
	return 0;
}

void tkv__struct_put(void *dst, const void *src, size_t cur)
{
	size_t n = size_of(dst);
	size_t common = n < cur ? n : cur;
	const size_t skip = sizeof(size_t);
	memcpy((unsigned char *)dst + skip, (const unsigned char *)src + skip, common - skip);
	if (n > cur)
		memset((unsigned char *)dst + cur, 0, n - cur);
}
