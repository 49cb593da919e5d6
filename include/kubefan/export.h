/*
 * One export macro for the public library. The library is built with
 * -fvisibility=hidden; only declarations marked KF_API are exported from
 * libkubefan.so. The static test build links every symbol.
 */
#ifndef KUBEFAN_EXPORT_H
#define KUBEFAN_EXPORT_H

#if defined(KF_BUILDING_LIBRARY)
#define KF_API __attribute__((visibility("default")))
#else
#define KF_API
#endif

#endif
