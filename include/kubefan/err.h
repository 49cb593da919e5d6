/*
 * kf_err: the one error type of kubefan. 0 is success. Functions that can
 * fail return a kf_err and fill out-pointers last; the detail (HTTP status,
 * the server's message, the path of a bad field) stays on the object that
 * failed and is read with that object's *_errmsg() call.
 */
#ifndef KUBEFAN_ERR_H
#define KUBEFAN_ERR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kf_err {
	KF_OK = 0,
	KF_ENOMEM,    /* allocation failed */
	KF_EINVAL,    /* bad argument or call order */
	KF_EPARSE,    /* malformed input (JSON, YAML, wire message) */
	KF_ECONFIG,   /* configuration or kubeconfig is wrong */
	KF_EHTTP,     /* HTTP status other than the one expected */
	KF_EGONE,     /* 410 Gone: resource version too old */
	KF_ETOOBIG,   /* a line or message over the configured limit */
	KF_ETIMEDOUT, /* a deadline passed */
	KF_EAGAIN,    /* nothing available now; try again */
	KF_ECLOSED,   /* the object was closed or stopped */
	KF_ENOTFOUND, /* no such object (authoritative: store is ready) */
	KF_ENOTREADY, /* the store has not synced; no answer is authoritative */
	KF_ELAGGED,   /* a subscriber fell behind and missed events */
	KF_ECURL,     /* libcurl failed; detail holds curl's text */
	KF_ENNG,      /* nng failed; detail holds nng's text */
	KF_EIO,	      /* a system call failed; detail holds errno's text */
	KF_EAUTH,     /* credentials missing, rejected or expired */
	KF_EPROTO,    /* the peer broke the protocol */
	KF_ERR_COUNT
} kf_err;

/* Static text naming the error; never NULL. */
KF_API const char *kf_strerror(kf_err err);

#ifdef __cplusplus
}
#endif

#endif
