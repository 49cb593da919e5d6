/*
 * kubefan: one watch on the Kubernetes API server, many controllers.
 * This umbrella header includes every public header.
 */
#ifndef KUBEFAN_KUBEFAN_H
#define KUBEFAN_KUBEFAN_H

#include "err.h"
#include "event.h"
#include "log.h"
#include "object.h"
#include "reflector.h"
#include "store.h"
#include "subscriber.h"
#include "controller.h"
#include "watcher.h"
#include "conn.h"
#include "publisher.h"
#include "remote.h"

#endif
