// The descriptor image `buf build` writes (gen/cloudpay.binpb): every file of every service we
// serve, with imports and comments. Reflection serves it; the request screen walks requests by it.
import { createFileRegistry, fromBinary, type Registry } from '@bufbuild/protobuf'
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt'
import { readFileSync } from 'node:fs'

export const DESCRIPTOR_IMAGE = new URL('../../gen/cloudpay.binpb', import.meta.url)

let registry: Registry | undefined

/** The image as a @bufbuild/protobuf registry, read once. */
export function descriptorRegistry(): Registry {
  return (registry ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_IMAGE))))
}
