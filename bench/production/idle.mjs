// A process that does nothing, for the memory floor of the runtime a service runs on: node alone
// (under tsx when the services run through it), or (with the argument `libraries`) with the libraries
// every service loads imported. Plain JavaScript, so that it runs as the compiled services do.
// Tells the benchmark it is ready over IPC, then waits to be stopped.
if (process.argv.includes('libraries')) {
  await import('reflect-metadata') // as the services' entry does: @peculiar/x509 needs it first
  await Promise.all([
    import('@grpc/grpc-js'),
    import('kysely'),
    import('pg'),
    import('pino'),
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-grpc'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/exporter-trace-otlp-proto'),
    import('@electric-sql/pglite'),
    import('@hpke/core'),
    import('@peculiar/x509'),
    import('@node-rs/argon2'),
  ])
}
process.send?.({ ready: true })
process.on('disconnect', () => process.exit(0))
setInterval(() => undefined, 60_000)
