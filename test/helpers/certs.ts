// Development certificates in a throwaway directory, for tests that start a bare server.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureDevCertificate } from '../../services/runtime/dev-certificates.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { channelCredentials, serverCredentials } from '../../services/runtime/tls.ts'

export async function devPki(refreshMs = 100) {
  const home = await mkdtemp(join(tmpdir(), 'cloudpay-pki-'))
  return {
    home,
    paths: (identity: Identity) => ensureDevCertificate(home, identity),
    server: async (identity: Identity) => serverCredentials(await ensureDevCertificate(home, identity), refreshMs),
    client: async (identity: Identity) => channelCredentials(await ensureDevCertificate(home, identity), refreshMs),
  }
}
