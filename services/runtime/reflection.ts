// gRPC server reflection (v1 and v1alpha) served from the real file descriptors of the image that
// `buf build` writes (gen/cloudpay.binpb): every file arrives with its imports, original names and
// comments, so grpcurl and other strict clients can describe and call every service.
import { fromBinary, toBinary } from '@bufbuild/protobuf'
import { type DescriptorProto, type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt'
import { type ServerDuplexStream, status as Status } from '@grpc/grpc-js'
import { readFileSync } from 'node:fs'
import { type ServerReflectionRequest, type ServerReflectionResponse, ServerReflectionService as ReflectionV1 } from '../../gen/grpc/reflection/v1/reflection.ts'
import { DESCRIPTOR_IMAGE } from './descriptor-image.ts'
import { quote, toServiceStatus } from './errors.ts'
import { refusalOf } from './request-screen.ts'
import { endWithStatus } from './streams.ts'

export { DESCRIPTOR_IMAGE }
export const REFLECTION_SERVICES = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'] as const

/**
 * The descriptor pool of the image: each file's bytes as reflection sends them, the files it imports,
 * the extensions it declares, and the file defining each symbol. The parsed descriptors are dropped
 * once indexed (they would hold 2.4 MB in every service process for a rarely asked question).
 */
export class DescriptorPool {
  private readonly files = new Map<string, { bytes: Uint8Array; dependencies: readonly string[]; extensions: readonly Extension[] }>()
  private readonly symbols = new Map<string, string>()

  constructor(image: Uint8Array) {
    for (const proto of fromBinary(FileDescriptorSetSchema, image).file) {
      const extensions = allExtensions(proto).map((extension) => ({ extendee: extension.extendee, number: extension.number }))
      this.files.set(proto.name, { bytes: toBinary(FileDescriptorProtoSchema, proto), dependencies: proto.dependency, extensions })
      const prefix = proto.package ? `${proto.package}.` : ''
      for (const message of proto.messageType) this.addMessage(prefix, message, proto.name)
      for (const enumType of proto.enumType) this.symbols.set(prefix + enumType.name, proto.name)
      for (const extension of proto.extension) this.symbols.set(prefix + extension.name, proto.name)
      for (const service of proto.service) {
        this.symbols.set(prefix + service.name, proto.name)
        for (const method of service.method) this.symbols.set(`${prefix}${service.name}.${method.name}`, proto.name)
      }
    }
  }

  static load(): DescriptorPool {
    return new DescriptorPool(readFileSync(DESCRIPTOR_IMAGE))
  }

  private addMessage(prefix: string, message: DescriptorProto, file: string): void {
    const name = prefix + message.name
    this.symbols.set(name, file)
    for (const field of message.field) this.symbols.set(`${name}.${field.name}`, file)
    for (const nested of message.nestedType) this.addMessage(`${name}.`, nested, file)
    for (const enumType of message.enumType) this.symbols.set(`${name}.${enumType.name}`, file)
    for (const extension of message.extension) this.symbols.set(`${name}.${extension.name}`, file)
  }

  hasService(fullName: string): boolean {
    return this.fileOfSymbol(fullName) !== undefined
  }

  fileOfSymbol(symbol: string): string | undefined {
    return this.symbols.get(symbol.replace(/^\./, ''))
  }

  /** The named file first, then every file it imports, transitively; each once. */
  fileWithDependencies(name: string): Uint8Array[] | undefined {
    if (!this.files.has(name)) return undefined
    const out: Uint8Array[] = []
    const seen = new Set<string>()
    const visit = (file: string): void => {
      const entry = this.files.get(file)
      if (!entry || seen.has(file)) return
      seen.add(file)
      out.push(entry.bytes)
      for (const dependency of entry.dependencies) visit(dependency)
    }
    visit(name)
    return out
  }

  /** Files that extend a message type, with the extension field numbers. */
  extensionsOf(typeName: string): { file: string; number: number }[] {
    const wanted = `.${typeName.replace(/^\./, '')}`
    const found: { file: string; number: number }[] = []
    for (const [name, { extensions }] of this.files) {
      for (const extension of extensions) if (extension.extendee === wanted) found.push({ file: name, number: extension.number })
    }
    return found
  }
}

interface Extension {
  readonly extendee: string
  readonly number: number
}

function allExtensions(file: FileDescriptorProto) {
  const out = [...file.extension]
  const walk = (message: DescriptorProto): void => {
    out.push(...message.extension)
    message.nestedType.forEach(walk)
  }
  file.messageType.forEach(walk)
  return out
}

/** Answers one reflection request. */
export function answerReflection(pool: DescriptorPool, services: readonly string[], request: ServerReflectionRequest): ServerReflectionResponse {
  const base = { validHost: request.host, originalRequest: request }
  const notFound = (message: string): ServerReflectionResponse => ({
    ...base,
    messageResponse: { $case: 'errorResponse', value: { errorCode: Status.NOT_FOUND, errorMessage: message } },
  })
  const files = (name: string | undefined, what: string): ServerReflectionResponse => {
    const found = name === undefined ? undefined : pool.fileWithDependencies(name)
    if (!found) return notFound(`${what} not found`)
    return { ...base, messageResponse: { $case: 'fileDescriptorResponse', value: { fileDescriptorProto: found.map((b) => Buffer.from(b)) } } }
  }
  const req = request.messageRequest
  switch (req?.$case) {
    case 'listServices':
      return { ...base, messageResponse: { $case: 'listServicesResponse', value: { service: services.map((name) => ({ name })) } } }
    case 'fileByFilename':
      return files(req.value, `file ${quote(req.value)}`)
    case 'fileContainingSymbol':
      return files(pool.fileOfSymbol(req.value), `symbol ${quote(req.value)}`)
    case 'fileContainingExtension': {
      const match = pool.extensionsOf(req.value.containingType).find((e) => e.number === req.value.extensionNumber)
      return files(match?.file, `extension ${req.value.extensionNumber} of ${quote(req.value.containingType)}`)
    }
    case 'allExtensionNumbersOfType': {
      if (!pool.fileOfSymbol(req.value)) return notFound(`type ${quote(req.value)} not found`)
      const numbers = pool.extensionsOf(req.value).map((e) => e.number)
      return { ...base, messageResponse: { $case: 'allExtensionNumbersResponse', value: { baseTypeName: req.value, extensionNumber: numbers } } }
    }
    default:
      return {
        ...base,
        messageResponse: { $case: 'errorResponse', value: { errorCode: Status.INVALID_ARGUMENT, errorMessage: 'message_request: one of its cases must be set' } },
      }
  }
}

/**
 * The bidi ServerReflectionInfo handler; v1alpha uses the same messages on another path. A client
 * that sends requests and does not read the answers is not answered ahead of its reading: 255 KB
 * of requests for a service's files had the server buffer 575 MB of answers. Once grpc-js holds
 * enough unsent answers (write() says so), requests are read again only after they drained.
 */
export function reflectionHandler(pool: DescriptorPool, services: readonly string[], idleMs: number) {
  return (call: ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>): void => {
    // Reflection clients ask one question after another; a stream that makes no progress (no
    // question asked, no answer taken) for `idleMs` (one opened and left, thousands of them) is
    // ended instead of held for ever.
    let idle: NodeJS.Timeout | undefined
    const awaitNext = (): void => {
      clearTimeout(idle)
      idle = setTimeout(() => call.end(), idleMs).unref()
    }
    awaitNext()
    call.on('close', () => clearTimeout(idle))
    call.on('data', (request: ServerReflectionRequest) => {
      awaitNext()
      const refusal = refusalOf(ReflectionV1.serverReflectionInfo.path, request)
      if (refusal) return endWithStatus(call, toServiceStatus(refusal).status)
      if (!call.write(answerReflection(pool, services, request))) {
        call.pause()
        call.once('drain', () => {
          awaitNext()
          call.resume()
        })
      }
    })
    call.on('end', () => call.end())
    call.on('error', () => call.end())
  }
}

export const reflectionV1Definition = ReflectionV1
export const reflectionV1AlphaDefinition = {
  serverReflectionInfo: { ...ReflectionV1.serverReflectionInfo, path: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo' as const },
}
