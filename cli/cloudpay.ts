// `npm run cloudpay -- <command>`: operator tooling.
//   cert <role> <id>   issue a development certificate for a mesh identity and print its paths
import { loadConfig } from '../services/runtime/config.ts'
import { ID_PATTERN, isRole, ROLES, spiffeUri } from '../services/runtime/identity.ts'
import { certificateFiles } from '../services/runtime/tls.ts'

const USAGE = `usage: npm run cloudpay -- cert <${ROLES.join('|')}> <id>\n`

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args
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
    const paths = await certificateFiles(config, { role, id })
    process.stdout.write(`identity ${spiffeUri({ role, id })}\nca   ${paths.caFile}\ncert ${paths.certFile}\nkey  ${paths.keyFile}\n`)
    return 0
  }
  process.stderr.write(USAGE)
  return 2
}

process.exitCode = await main(process.argv.slice(2))
