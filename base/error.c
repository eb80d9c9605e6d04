/*
 * error.c - error names (tkv_strerror) and the per-thread message of the last
 * failed call (tkv_last_error). The message lives in thread-local storage so
 * concurrent engine threads never see each other's errors.
 */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tierkv.h"

static _Thread_local char last_error[256];

int tkv__fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

void tkv__clear_error(void)
{
	last_error[0] = '\0';
}

const char *tkv_last_error(void)
{
	return last_error;
}

const char *tkv_strerror(int err)
{
	switch (err) {
	case 0: return "OK: success";
	case -EINVAL: return "EINVAL: invalid argument";
	case -EAGAIN: return "EAGAIN: would block (ring or hot tier full)";
	case -ENOSPC: return "ENOSPC: tier full";
	case -ENOENT: return "ENOENT: unknown sequence or tokens not stored";
	case -ENOMEM: return "ENOMEM: out of memory";
	case -EIO: return "EIO: I/O error";
	case -TKV_ECORRUPT: return "ECORRUPT: record failed its checksum";
	case -EBADF: return "EBADF: runtime closing or closed";
	case -EEXIST: return "EEXIST: already exists";
	case -EBUSY: return "EBUSY: in use (pinned or pending)";
	case -ERANGE: return "ERANGE: out of range";
	case -EOVERFLOW: return "EOVERFLOW: size overflows";
	case -ETIMEDOUT: return "ETIMEDOUT: timed out";
	case -EMEDIUMTYPE: return "EMEDIUMTYPE: cold directory has another geometry";
	case -E2BIG: return "E2BIG: struct sets a field this library does not know";
	default: return err < 0 ? "unknown error" : "not an error code (expected <= 0)";
	}
}

unsigned tkv_version(void)
{
	return TKV_VERSION_HEX;
}

#define TKV_STR2(x) #x
#define TKV_STR(x) TKV_STR2(x)
const char *tkv_version_string(void)
{
	return TKV_STR(TKV_VERSION_MAJOR) "." TKV_STR(TKV_VERSION_MINOR) "." TKV_STR(
		TKV_VERSION_PATCH);
}
