// Limits set deliberately on every server and client (grpc-js defaults are unlimited or implicit).

/** Largest message either side accepts: our messages are small; 4 MiB leaves room for reflection. */
export const MESSAGE_LIMIT_BYTES = 4 * 1024 * 1024

/**
 * How long a call whose request is one message (every RPC but reflection's) may take to send all
 * of it: a stream that opened with headers and sent nothing more waited for ever (20,000 of them
 * from one certificate held ~170 MB), with or without a deadline. Ours arrive in milliseconds.
 * A reflection stream, whose requests come one by one, may wait this long for each.
 */
export const REQUEST_ARRIVAL_MS = 10_000

/** Concurrent streams per HTTP/2 connection: a terminal or instance holds a handful; load tests open many. */
export const MAX_CONCURRENT_STREAMS = 16_384

/** Long-lived streams (Notify, FollowTerminal, Health Watch) one caller may hold on one replica (CLOUDPAY_MAX_STREAMS_PER_CALLER). */
export const MAX_STREAMS_PER_CALLER = 64

/** Server keepalive: ping idle connections, drop those that do not answer. */
export const SERVER_KEEPALIVE_TIME_MS = 60_000
export const SERVER_KEEPALIVE_TIMEOUT_MS = 20_000

/** A connection idle this long is closed (clients reconnect transparently). */
export const MAX_CONNECTION_IDLE_MS = 10 * 60_000

/**
 * Hard caps on every request field, whatever the RPC (handlers declare tighter ones per field):
 * no legitimate request string comes near 4,096 UTF-16 units (ids are <= 128, free text <= 512).
 */
export const MAX_REQUEST_STRING_LENGTH = 4096
export const MAX_REQUEST_BYTES_LENGTH = 64 * 1024

/**
 * Request headers (all metadata of one call, uncompressed): HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE.
 * 16 KiB, gRPC C-core's hard limit; our own calls send < 1 KiB (traceparent, baggage).
 */
export const MAX_HEADER_LIST_BYTES = 16 * 1024
