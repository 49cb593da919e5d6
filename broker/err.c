/* kf_err texts. */
#include <stddef.h>

#include "kubefan/err.h"

static const char *const err_names[KF_ERR_COUNT] = {
    [KF_OK] = "success",
    [KF_ENOMEM] = "out of memory",
    [KF_EINVAL] = "invalid argument",
    [KF_EPARSE] = "malformed input",
    [KF_ECONFIG] = "invalid configuration",
    [KF_EHTTP] = "unexpected HTTP status",
    [KF_EGONE] = "resource version expired (410 Gone)",
    [KF_ETOOBIG] = "input over the configured limit",
    [KF_ETIMEDOUT] = "timed out",
    [KF_EAGAIN] = "nothing available now",
    [KF_ECLOSED] = "closed",
    [KF_ENOTFOUND] = "not found",
    [KF_ENOTREADY] = "not ready",
    [KF_ELAGGED] = "subscriber lagged",
    [KF_ECURL] = "HTTP transport error",
    [KF_ENNG] = "messaging error",
    [KF_EIO] = "system error",
    [KF_EAUTH] = "authentication failed",
    [KF_EPROTO] = "protocol violation",
};

const char *
kf_strerror(kf_err err)
{
	if ((unsigned)err >= KF_ERR_COUNT || err_names[err] == NULL)
		return "unknown error";
	return err_names[err];
}
