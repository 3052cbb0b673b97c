// The descriptor image `buf build` writes (gen/cloudpay.binpb): every file of every service we
// serve, with imports and comments. Reflection serves it; the request screen walks requests by it.
import { create, createFileRegistry, type DescService, fromBinary, type Registry } from '@bufbuild/protobuf'
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt'
import { readFileSync } from 'node:fs'

export const DESCRIPTOR_IMAGE = new URL('../../gen/cloudpay.binpb', import.meta.url)

const readImage = () => fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_IMAGE))

let registry: Registry | undefined

/** Every file of the image as one registry, read once (tests and tools that look at all of it). */
export function descriptorRegistry(): Registry {
  return (registry ??= createFileRegistry(readImage()))
}

const services = new Map<string, DescService>()

/**
 * A service's descriptor ("cloudpay.x.v1.Name"), built once from its own file and the files it imports,
 * transitively: a process serving one service holds that, not every file of the image (3 MB as a registry).
 */
export function serviceDescriptor(fullName: string): DescService | undefined {
  const known = services.get(fullName)
  if (known) return known
  const image = readImage()
  const byName = new Map(image.file.map((file) => [file.name, file]))
  const defining = image.file.find((file) => file.service.some((service) => `${file.package ? `${file.package}.` : ''}${service.name}` === fullName))
  if (!defining) return undefined
  const needed = new Set<string>()
  const visit = (name: string): void => {
    if (needed.has(name)) return
    needed.add(name)
    for (const dependency of byName.get(name)?.dependency ?? []) visit(dependency)
  }
  visit(defining.name)
  // The image lists every file after the files it imports, as a registry wants them.
  const own = create(FileDescriptorSetSchema, { file: image.file.filter((file) => needed.has(file.name)) })
  const service = createFileRegistry(own).getService(fullName)
  if (service) services.set(fullName, service)
  return service
}
