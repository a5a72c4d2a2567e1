/*
 * host.h - which host a process is on, and its addresses (host.c).
 *
 * Host identity.  The shared-memory transport works only between two
 * processes of one kernel that can reach each other's abstract Unix
 * socket, and a process must never take "I could open it" as proof of
 * that: an abstract name or a /dev/shm file can meet across hosts that
 * share nothing but a naming accident (containers, simulated hosts, a
 * shared /tmp).  So every server says who its host is in its welcome
 * (frame/hello.h), every worker computes its own identity the same way,
 * and a worker tries shared memory only when the two are equal.  The
 * identity is
 *
 *     HOSTNAME/BOOT_ID/NETNS
 *
 * (the host name, for messages; the kernel's boot id, which differs on
 * every machine and every boot; the inode of the network namespace, which
 * differs between containers and simulated hosts on one kernel), or, when
 * given (PARAMD_HOST_ID, paramd_connect's host_id=, paramd server
 * --host-id), that string as it is: a launcher that knows better can say
 * which processes share a host.
 *
 * Addresses.  paramd launch needs to know which address of this host the
 * others can reach: the one the kernel would use to reach a given peer
 * (pd_route_source), the address of a named interface or subnet
 * (pd_iface_addr), whether a host name is this host (pd_host_is_local),
 * and whether an address is loopback (never advertised to another host).
 *
 * Everything here is a plain function of the system's state: no locks, no
 * globals; thread-safe.
 */
#ifndef PARAMD_NET_HOST_H
#define PARAMD_NET_HOST_H

#include <stddef.h>

#include "common/common.h"

#define PD_HOST_ID_MAX 127 /* bytes of a host identity */
#define PD_HOST_ADDR_MAX 63 /* bytes of a numeric address */

/* This process's host identity into out (at least PD_HOST_ID_MAX + 1
 * bytes): `given` if it is non-NULL and non-empty (checked: 1..127
 * printable characters, no spaces), else HOSTNAME/BOOT_ID/NETNS.  0, or PARAMD_EINVAL for a bad given id, with
 * the reason in e. */
int pd_host_id(const char *given, char *out, size_t n, pd_err *e);
/* The host name part of an identity (before the first '/'; all of a given
 * id without one) into out, for messages. */
void pd_host_name_of(const char *id, char *out, size_t n);

/* 1 if the numeric address `addr` is a loopback address (127.0.0.0/8,
 * ::1), else 0. */
int pd_addr_is_loopback(const char *addr);
/* The local address the kernel would send from to reach host (a name or
 * a numeric address; no packet is sent: a UDP socket is connected and
 * asked), numeric, into out.  0, or PARAMD_ECONNECT with the reason. */
int pd_route_source(const char *host, char *out, size_t n, pd_err *e);
/* The first address of the interface called `spec` that is up, or, when
 * spec is a subnet "A.B.C.D/LEN" (or an IPv6 one), the first local
 * address inside it; numeric, into out.  0, or PARAMD_ECONFIG with the
 * interfaces there are. */
int pd_iface_addr(const char *spec, char *out, size_t n, pd_err *e);
/* 1 if host (a name or a numeric address) resolves to an address of one
 * of this host's interfaces (loopback included), 0 if it resolves but to
 * none, -1 if it does not resolve (reason in e). */
int pd_host_is_local(const char *host, pd_err *e);
/* This host's first address that is up and not loopback (IPv4 first,
 * then IPv6 global), numeric, into out; 0, or PARAMD_ECONFIG if it has
 * none. */
int pd_host_first_addr(char *out, size_t n, pd_err *e);

#endif
