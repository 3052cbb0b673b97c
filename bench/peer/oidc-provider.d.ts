// The part of oidc-provider 9.13 (which ships no type declarations) that the peer benchmark uses,
// as documented in its docs/README.md (features.ciba, features.mTLS, provider.backchannelResult).
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'
  import type { TLSSocket } from 'node:tls'
  import type { X509Certificate } from 'node:crypto'

  export interface KoaContext {
    readonly socket: TLSSocket
  }

  export interface Account {
    readonly accountId: string
    claims(): Promise<Record<string, unknown>>
  }

  export interface BackchannelAuthenticationRequest {
    readonly accountId: string
    readonly clientId: string
    readonly scope: string
  }

  export interface Grant {
    addOIDCScope(scope: string): void
    save(): Promise<string>
  }

  export interface Configuration {
    readonly clients: readonly Record<string, unknown>[]
    readonly clientAuthMethods: readonly string[]
    readonly findAccount: (ctx: KoaContext, id: string) => Promise<Account | undefined>
    readonly jwks: { readonly keys: readonly Record<string, unknown>[] }
    readonly cookies: { readonly keys: readonly string[] }
    readonly ttl: Readonly<Record<string, number>>
    readonly features: {
      readonly devInteractions: { readonly enabled: boolean }
      readonly ciba: {
        readonly enabled: boolean
        readonly deliveryModes: readonly string[]
        processLoginHint(ctx: KoaContext, loginHint: string): Promise<string | undefined>
        verifyUserCode(ctx: KoaContext, account: Account, userCode: string | undefined): Promise<void>
        validateRequestContext(ctx: KoaContext, requestContext: string | undefined): Promise<void>
        validateBindingMessage(ctx: KoaContext, bindingMessage: string | undefined): Promise<void>
        triggerAuthenticationDevice(ctx: KoaContext, request: BackchannelAuthenticationRequest, account: Account, client: unknown): Promise<void>
      }
      readonly mTLS: {
        readonly enabled: boolean
        readonly tlsClientAuth: boolean
        getCertificate(ctx: KoaContext): X509Certificate | string | undefined
        certificateAuthorized(ctx: KoaContext): boolean
        certificateSubjectMatches(ctx: KoaContext, property: string, expected: string): boolean
      }
    }
  }

  export class Provider {
    constructor(issuer: string, configuration: Configuration)
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    backchannelResult(request: BackchannelAuthenticationRequest, result: Grant | Error, options?: { authTime?: number }): Promise<void>
    readonly BackchannelAuthenticationRequest: { find(id: string): Promise<BackchannelAuthenticationRequest | undefined> }
    readonly Grant: new (properties: { accountId: string; clientId: string }) => Grant
  }

  export const errors: { AccessDenied: new (description: string) => Error }
  export default Provider
}
