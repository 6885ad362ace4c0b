// Package admin is a host daemon's admin API: HTTP+JSON on a Unix socket
// (mode 0600; a peer of another uid is refused by its SO_PEERCRED
// credentials), for the guests a hosting.Daemon serves and their
// integration components (device/ic): heartbeat, shutdown, time sync and
// KVP. `vmbus host --admin PATH` serves it and `vmbus admin` is its
// client (Client); a VMM that embeds the daemon serves it with Listen.
//
// Endpoints (every answer is JSON; an error is {"error": "..."} with the
// status below):
//
//	GET    /v1/guests                          the guests, their channels, IC status and health
//	POST   /v1/guests/{id}/heartbeat           one heartbeat now; the health after it
//	POST   /v1/guests/{id}/shutdown            ShutdownRequest; waits for the guest's answer
//	POST   /v1/guests/{id}/time                one time sample now; the guest's offset as the host knows it
//	GET    /v1/guests/{id}/kvp/{pool}          every entry of pool
//	GET    /v1/guests/{id}/kvp/{pool}/{key}    one value
//	PUT    /v1/guests/{id}/kvp/{pool}/{key}    {"value": "..."}
//	DELETE /v1/guests/{id}/kvp/{pool}/{key}
//
// A request that waits for the guest takes ?wait=DURATION (default
// DefaultWait, at most MaxWait). Statuses: 400 a bad request (pool, body,
// wait), 404 an unknown guest or a guest without the service, 409 the
// guest's refusal (no such key, a failure status), 503 too many admin
// requests (MaxPending), a service without a common version or a
// servicing (below), 504 no
// answer in time, 502 the channel closed under the request, 403 a peer of
// another uid.
//
// # Servicing
//
// The socket is not handed over: the successor listens anew on the same
// path (Listen replaces the file through a rename), and Close removes the
// path only if it is still this server's, so that a predecessor leaving
// after a spawned servicing does not remove its successor's socket. A
// client that connects in between is refused; Client retries a refused
// connection until its deadline.
//
// A server of a hosting.Daemon takes its events (Daemon.Subscribe; the
// owner of another Source calls Server.Observe): a servicing's start
// pauses the API. Requests that come while the servicing runs are
// answered 503 with {"retry": true}; those waiting for a guest are
// cancelled and answered 503 before the servicing goes on (with retry
// when sending them again does no harm: Idempotent), so that none is
// carried out and left unanswered by the handover. The servicing waits
// at most a second for that. A request still queued in the socket as the
// old image goes ends unanswered, and was not carried out. Client sends a
// request again after a 503 with retry, and an idempotent one after its
// connection ended unanswered, for as long as it retries a refused
// connection; a shutdown or KVP delete cut off so fails with the reason.
// Without Observe an admin request in flight as the host is serviced can
// fail with the connection's end (EOF, connection reset). A servicing to
// a successor in the same process (Daemon.ServiceTo) leaves this server
// paused: serve the successor with a server of its own.
package admin
