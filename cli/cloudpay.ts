// `npm run cloudpay -- <command>`: operator tooling.
//   cert <role> <id>                      issue a development certificate for a mesh identity and print its paths
//   trace <order-id|login-id|trace-id>    print a stored trace as a waterfall (add --db for query spans)
//   seal --device ... --order ...         seal a payment password for PayThroughRelay (cli/seal.ts)
//   offline-code <payee|provision|generate|redeem|list> ...   offline payment codes by hand (cli/offline-code.ts)
import { randomBytes } from 'node:crypto'
import { status as Status } from '@grpc/grpc-js'
import { OfflineCodeRefused } from '../sdk/offline-code.ts'
import { CloudpayCallError } from '../sdk/terminal.ts'
import { loadConfig } from '../services/runtime/config.ts'
import { join } from 'node:path'
import { certsDir, issueSeparateDevCertificate } from '../services/runtime/dev-certificates.ts'
import { ID_PATTERN, isRole, ROLES, spiffeUri } from '../services/runtime/identity.ts'
import { readStoredSpans } from '../services/runtime/span-file.ts'
import { certificateFiles } from '../services/runtime/tls.ts'
import { OFFLINE_USAGE, offlineCode, OfflineUsageError } from './offline-code.ts'
import { seal, SEAL_USAGE } from './seal.ts'
import { findTraceIds, waterfall } from './waterfall.ts'

const USAGE = `usage: npm run cloudpay -- cert <${ROLES.join('|')}> <id>\n       npm run cloudpay -- trace <order-id|login-id|trace-id> [--db]\n       ${SEAL_USAGE}${OFFLINE_USAGE}`

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    ;(command === undefined ? process.stderr : process.stdout).write(USAGE)
    return command === undefined ? 2 : 0
  }
  if (command === 'cert') {
    const [role, id] = rest
    if (!role || !id || !isRole(role)) {
      process.stderr.write(USAGE)
      return 2
    }
    if (!ID_PATTERN.test(id)) {
      process.stderr.write(`id must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit\n`)
      return 2
    }
    const config = loadConfig()
    if (config.tls.kind !== 'dev') {
      process.stderr.write('CLOUDPAY_TLS_* points at your own CA: issue certificates with it, not with the development CA\n')
      return 2
    }
    // A service's own key never leaves its files: a service certificate for grpcurl is a new key pair.
    const paths =
      role === 'service'
        ? await issueSeparateDevCertificate(config.home, { role, id }, `cli-${randomBytes(4).toString('hex')}`)
        : await certificateFiles(config, { role, id })
    process.stdout.write(`identity ${spiffeUri({ role, id })}\nca   ${paths.caFile}\ncert ${paths.certFile}\nkey  ${paths.keyFile}\n`)
    return 0
  }
  if (command === 'trace') {
    const key = rest.find((a) => !a.startsWith('--'))
    if (!key) {
      process.stderr.write(USAGE)
      return 2
    }
    const config = loadConfig()
    if (!config.traceFile) {
      process.stderr.write('CLOUDPAY_TRACE_FILE=off: no spans are kept locally\n')
      return 2
    }
    const spans = readStoredSpans(config.traceFile)
    const traceIds = findTraceIds(spans, key)
    if (traceIds.length === 0) {
      process.stderr.write(`no stored trace matches ${key} (spans are read from ${config.traceFile})\n`)
      return 1
    }
    for (const traceId of traceIds) process.stdout.write(waterfall(spans, traceId, { db: rest.includes('--db') }) + '\n')
    return 0
  }
  if (command === 'seal') {
    // The mesh CA: the one CLOUDPAY_TLS_CA names, or the development CA.
    return seal(rest, async () => {
      const { tls, home } = loadConfig()
      return tls.kind === 'files' ? tls.caFile : join(certsDir(home), 'ca.crt')
    })
  }
  if (command === 'offline-code') {
    try {
      return await offlineCode(rest, (text) => process.stdout.write(text))
    } catch (error) {
      if (error instanceof OfflineUsageError) {
        process.stderr.write(`${error.message}\n${USAGE}`)
        return 2
      }
      // A refusal (the SDK's CloudpayCallError) or a code the terminal or payee will not use (OfflineCodeRefused).
      if (error instanceof CloudpayCallError) process.stderr.write(`refused: ${Status[error.code]} ${error.reason}: ${error.message}\n`)
      else if (error instanceof OfflineCodeRefused) process.stderr.write(`${error.message}\n`)
      else throw error
      return 1
    }
  }
  process.stderr.write(`unknown command ${JSON.stringify(command.slice(0, 40))}\n${USAGE}`)
  return 2
}

// Piped into `head` and the like: a closed pipe ends the output, it is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  throw error
})

process.exitCode = await main(process.argv.slice(2))
