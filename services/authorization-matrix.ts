// The whole authorization matrix in one place: every RPC of every service x every kind of caller,
// with the object rule its handler enforces. docs/authorization.md is generated from it
// (`npm run -s docs:authorization`), and test/mesh/authorization-matrix.test.ts calls every cell.
import { ALL_SERVICES } from './registry.ts'
import { permits } from './runtime/authz.ts'
import { SERVICE_NAMES } from './runtime/config.ts'
import type { Identity } from './runtime/identity.ts'
import type { MethodAccess, ServiceSpec } from './runtime/service-host.ts'

/** One caller per column: each service by name, then one instance, terminal and operator. */
export const MATRIX_CALLERS: readonly Identity[] = [
  ...SERVICE_NAMES.map((id) => ({ role: 'service' as const, id })),
  { role: 'instance', id: 'matrix-device' },
  { role: 'terminal', id: 'matrix-phone' },
  { role: 'operator', id: 'matrix-operator' },
]

export interface MatrixCell {
  readonly service: ServiceSpec
  readonly method: MethodAccess
  readonly caller: Identity
  readonly allowed: boolean
}

export function matrixCells(): MatrixCell[] {
  return ALL_SERVICES.flatMap((service) =>
    service.methods.flatMap((method) => MATRIX_CALLERS.map((caller) => ({ service, method, caller, allowed: permits(method.rule, caller) }))),
  )
}

const column = (caller: Identity): string => (caller.role === 'service' ? caller.id : caller.role)

/** The matrix as Markdown: one table per service, a row per RPC, a column per caller. */
export function matrixMarkdown(): string {
  const lines = [
    '# Who may call what',
    '',
    'Generated from the rules in `services/*/authorization.ts` by `npm run -s docs:authorization`; do not edit.',
    'Every connection is mutual TLS and the caller is the SPIFFE URI of its verified leaf certificate.',
    'A cell with ✓ admits that caller (any other caller gets `PERMISSION_DENIED`, reason `ROLE_NOT_ALLOWED`,',
    'before any handler runs); the last column is the object rule the handler then enforces',
    '(`PERMISSION_DENIED` with its own reason). `test/mesh/authorization-matrix.test.ts` calls every cell.',
    '',
  ]
  for (const service of ALL_SERVICES) {
    lines.push(`## ${service.protoName}`, '')
    lines.push(`| RPC | ${MATRIX_CALLERS.map(column).join(' | ')} | object rule |`)
    lines.push(`|---|${MATRIX_CALLERS.map(() => ':-:').join('|')}|---|`)
    for (const method of service.methods) {
      const cells = MATRIX_CALLERS.map((caller) => (permits(method.rule, caller) ? '✓' : ''))
      lines.push(`| ${method.name} | ${cells.join(' | ')} | ${method.rule.objects ?? ''} |`)
    }
    lines.push('')
  }
  lines.push('Health (`grpc.health.v1.Health`) and server reflection: any mesh identity.', '')
  return lines.join('\n')
}
