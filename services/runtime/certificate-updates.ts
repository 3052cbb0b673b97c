// What grpc-js's certificate file watcher hands on to servers and channels: changes only, and
// never a pair that cannot be served once a good one was.
import { createSecureContext } from 'node:tls'
import { experimental } from '@grpc/grpc-js'

type CaUpdate = experimental.CaCertificateUpdate | null
type IdentityUpdate = experimental.IdentityCertificateUpdate | null

/**
 * grpc-js's file watcher re-reads the files every refresh and hands every read on: each server
 * then builds a new TLS context (its key parsed again) twice per refresh, though nothing changed.
 * This passes on only what changed. And once a good pair was served, a read that cannot serve
 * (a file missing, or a certificate not matching its key, as between the two renames of a
 * rotation) keeps the last good pair rather than leaving the server with none: grpc-js refuses
 * every new connection while its credentials are unusable.
 */
export class ChangedCertificatesOnly implements experimental.CertificateProvider {
  reads = 0
  passedOn = 0
  /** Reads that changed something but could not be served, so the last good files stayed. */
  kept = 0
  #ca: CaUpdate | undefined
  #identity: IdentityUpdate | undefined
  readonly #caListeners = new Set<experimental.CaCertificateUpdateListener>()
  readonly #identityListeners = new Set<experimental.IdentityCertificateUpdateListener>()

  constructor(private readonly files: experimental.FileWatcherCertificateProvider) {}

  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.#watch()
    this.#caListeners.add(listener)
    if (this.#ca !== undefined) process.nextTick(listener, this.#ca)
  }
  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.#caListeners.delete(listener)
    this.#unwatchIfUnused()
  }
  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.#watch()
    this.#identityListeners.add(listener)
    if (this.#identity !== undefined) process.nextTick(listener, this.#identity)
  }
  removeIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.#identityListeners.delete(listener)
    this.#unwatchIfUnused()
  }

  readonly #onIdentity = (update: IdentityUpdate): void => {
    this.reads++
    const current = this.#identity
    if (update && current && update.certificate.equals(current.certificate) && update.privateKey.equals(current.privateKey)) return
    if (update === null && current === null) return
    const usable = servable(update)
    if (current && !usable) {
      this.kept++
      return
    }
    this.#identity = usable ? update : null
    this.passedOn++
    for (const listener of this.#identityListeners) listener(this.#identity)
  }
  readonly #onCa = (update: CaUpdate): void => {
    const current = this.#ca
    if (update && current && update.caCertificate.equals(current.caCertificate)) return
    if (update === null && current === null) return
    if (current && update === null) {
      this.kept++
      return
    }
    this.#ca = update
    this.passedOn++
    for (const listener of this.#caListeners) listener(update)
  }

  #watching = false
  #watch(): void {
    if (this.#watching) return
    this.#watching = true
    this.files.addIdentityCertificateListener(this.#onIdentity)
    this.files.addCaCertificateListener(this.#onCa)
  }
  #unwatchIfUnused(): void {
    if (!this.#watching || this.#caListeners.size > 0 || this.#identityListeners.size > 0) return
    this.#watching = false
    // A provider watched by no one keeps no timer.
    this.files.removeIdentityCertificateListener(this.#onIdentity)
    this.files.removeCaCertificateListener(this.#onCa)
  }
}

/** Whether this certificate and key make a TLS context (parsable, and the key is the certificate's). */
function servable(update: IdentityUpdate): update is experimental.IdentityCertificateUpdate {
  if (!update) return false
  try {
    createSecureContext({ cert: update.certificate, key: update.privateKey })
    return true
  } catch {
    return false
  }
}
