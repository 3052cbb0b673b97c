// Mutual TLS credentials for servers and clients. Certificate files are watched, so files replaced
// on disk (rotation) are used for new connections without a restart.
import { TLSSocket, type PeerCertificate } from 'node:tls'
import { type ChannelCredentials, experimental, type ServerCredentials } from '@grpc/grpc-js'
import { ChangedCertificatesOnly } from './certificate-updates.ts'
import type { Config } from './config.ts'
import { type CertificatePaths, ensureDevCertificate } from './dev-certificates.ts'
import type { Identity } from './identity.ts'

export type { CertificatePaths }

/** Where this identity's CA, certificate and key live; the dev CA creates them when missing. */
export async function certificateFiles(config: Config, identity: Identity): Promise<CertificatePaths> {
  if (config.tls.kind === 'files') return config.tls
  return ensureDevCertificate(config.home, identity)
}

const providers = new Map<string, ChangedCertificatesOnly>()

function providerFor(paths: CertificatePaths, refreshMs: number): ChangedCertificatesOnly {
  const key = `${paths.caFile}\0${paths.certFile}\0${paths.keyFile}\0${refreshMs}`
  let provider = providers.get(key)
  if (!provider) {
    provider = new ChangedCertificatesOnly(
      new experimental.FileWatcherCertificateProvider({
        caCertificateFile: paths.caFile,
        certificateFile: paths.certFile,
        privateKeyFile: paths.keyFile,
        refreshIntervalMs: refreshMs,
      }),
    )
    providers.set(key, provider)
  }
  return provider
}

/** How often this identity's files were read, and how many of those reads reached grpc-js. */
export function certificateReads(paths: CertificatePaths, refreshMs: number): { reads: number; passedOn: number; kept: number } {
  const { reads, passedOn, kept } = providerFor(paths, refreshMs)
  return { reads, passedOn, kept }
}

/**
 * grpc-js asks the socket for its peer's certificate on every call, and Node builds a new object
 * each time (subject, SANs, fingerprints: a fifth of a call's own cost). A connection's peer
 * certificate cannot change once a TLS 1.3 handshake is done (1.3 has no renegotiation), so each
 * such socket's is built once and kept with the socket; TLS 1.2 connections are asked each time.
 */
export function rememberPeerCertificates(): void {
  if (remembering) return
  remembering = true
  const built = TLSSocket.prototype.getPeerCertificate
  const kept = new WeakMap<TLSSocket, PeerCertificate>()
  TLSSocket.prototype.getPeerCertificate = function (this: TLSSocket, detailed?: boolean) {
    if (detailed) return built.call(this, detailed)
    let certificate = kept.get(this)
    if (!certificate) {
      certificate = built.call(this, false)
      if (certificate?.raw && this.getProtocol() === 'TLSv1.3') kept.set(this, certificate)
    }
    return certificate
  } as typeof built
}
let remembering = false

/** Server side: a client certificate signed by the mesh CA is required on every connection. */
export function serverCredentials(paths: CertificatePaths, refreshMs: number): ServerCredentials {
  const provider = providerFor(paths, refreshMs)
  // One provider serves both the CA and the identity (grpc-js swaps this function's parameter
  // names internally; passing the same provider twice sidesteps that).
  return experimental.createCertificateProviderServerCredentials(provider, provider, true)
}

/** Client side: presents this identity's certificate and trusts only the mesh CA. */
export function channelCredentials(paths: CertificatePaths, refreshMs: number): ChannelCredentials {
  const provider = providerFor(paths, refreshMs)
  return experimental.createCertificateProviderChannelCredentials(provider, provider)
}

/**
 * Resolves once the files of this identity are loaded (the provider reads them asynchronously):
 * a server that accepted connections before would reset them (grpc-js drops connections while its
 * credentials are unloaded), and a client would see ECONNRESET instead of a served call.
 */
export function certificatesLoaded(paths: CertificatePaths, refreshMs: number): Promise<void> {
  const provider = providerFor(paths, refreshMs)
  return new Promise((resolve) => {
    let identity = false
    let ca = false
    const settle = (): void => {
      if (!identity || !ca) return
      // Removed at once: a provider watched by no one keeps no timer (the server attaches its own
      // listeners next and gets the files already read).
      provider.removeIdentityCertificateListener(onIdentity)
      provider.removeCaCertificateListener(onCa)
      resolve()
    }
    const onIdentity = (update: unknown): void => {
      identity ||= update !== null
      settle()
    }
    const onCa = (update: unknown): void => {
      ca ||= update !== null
      settle()
    }
    provider.addIdentityCertificateListener(onIdentity)
    provider.addCaCertificateListener(onCa)
  })
}
