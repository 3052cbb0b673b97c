// `npm start`: all five services in one process on loopback, embedded storage, development
// certificates created if missing; prints where everything is and serves until Ctrl-C.
import { relative } from 'node:path'
import { showDemo } from '../cli/demo/show.ts'
import { ALL_SERVICES } from './registry.ts'
import { certificateFiles } from './runtime/tls.ts'
import { type Mesh, runServiceProcess } from './runtime/process.ts'

const OPERATOR = { role: 'operator', id: 'cli' } as const

async function printBanner(mesh: Mesh): Promise<void> {
  const operator = await certificateFiles(mesh.config, OPERATOR)
  const show = (file: string): string => relative(process.cwd(), file) || file
  const rows = mesh.services.map((s) => `  ${s.name.padEnd(20)} ${s.address.padEnd(17)} ${[...s.server.health.servingServices()].join(', ')}`)
  const first = mesh.services[0]!
  process.stdout.write(
    [
      '',
      'cloudpay mesh is up (mutual TLS everywhere; storage: ' + (mesh.database.kind === 'pglite' ? `embedded PGlite in ${show(mesh.config.home)}/db` : 'PostgreSQL') + ')',
      '',
      `  ${'service'.padEnd(20)} ${'address'.padEnd(17)} gRPC service`,
      ...rows,
      '',
      'Try it (grpcurl, with the development CA and an operator certificate):',
      `  grpcurl -cacert ${show(operator.caFile)} -cert ${show(operator.certFile)} -key ${show(operator.keyFile)} ${first.address} list`,
      `  grpcurl -cacert ${show(operator.caFile)} -cert ${show(operator.certFile)} -key ${show(operator.keyFile)} ${first.address} grpc.health.v1.Health/Check`,
      '',
      'More identities: npm run cloudpay -- cert <service|instance|terminal|operator> <id>.  Ctrl-C stops.',
      '',
    ].join('\n'),
  )
}

await runServiceProcess(ALL_SERVICES, async (mesh) => {
  await printBanner(mesh)
  if (process.argv.includes('--no-demo')) return
  // The demo once, so a newcomer sees both flows; the mesh keeps serving afterwards.
  const addresses = new Map(mesh.services.map((s) => [s.name, s.address]))
  await showDemo(mesh.config, addresses, mesh.telemetry, false).catch((error: unknown) => mesh.log.error({ err: error }, 'the demo failed'))
  process.stdout.write('\nThe mesh keeps serving. Ctrl-C stops.\n')
})
