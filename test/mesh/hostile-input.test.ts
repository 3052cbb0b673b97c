// Hostile input over the whole mesh, as a foreign client sends it: for EVERY RPC of every service
// in the descriptor image and EVERY field of its request (recursively), the values an attacker
// tries, sent as a role the RPC's rule admits. Each refusal must be INVALID_ARGUMENT naming the
// field; nothing may ever be a server fault (INTERNAL, UNKNOWN) or hang (DEADLINE_EXCEEDED).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { readFile } from 'node:fs/promises'
import { type Client, status as Status } from '@grpc/grpc-js'
import { createFileRegistry, type DescMethod, type DescService, fromBinary } from '@bufbuild/protobuf'
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt'
import { AccountManagementServiceService } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { AppServiceService } from '../../gen/cloudpay/app/v1/app_service.ts'
import { InstanceEventsServiceService } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { PaymentManagementServiceService } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { PaymentPlatformServiceService } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { PushRelayServiceService } from '../../gen/cloudpay/push/v1/push_relay_service.ts'
import { rules as accountRules } from '../../services/account-management/authorization.ts'
import { rules as appRules } from '../../services/app-service/authorization.ts'
import { rules as eventRules } from '../../services/instance-events/authorization.ts'
import { rules as paymentRules } from '../../services/payment-management/authorization.ts'
import { rules as platformRules } from '../../services/payment-platform/authorization.ts'
import { rules as relayRules } from '../../services/push-relay/authorization.ts'
import { type Rule, rulesByPath } from '../../services/runtime/authz.ts'
import type { ServiceName } from '../../services/runtime/config.ts'
import { formatIdentity, type Identity } from '../../services/runtime/identity.ts'
import { DESCRIPTOR_IMAGE } from '../../services/runtime/reflection.ts'
import { type HostileCase, hostileCases, UNDECODABLE_BODIES } from '../helpers/hostile.ts'
import { INSTANCE, OPERATOR, startTestMesh, TERMINAL, type TestMesh } from '../helpers/mesh.ts'
import { type Outcome, pathOf, rawCall, rawClient } from '../helpers/raw-call.ts'

/** Where each cloudpay service runs and who may call each of its RPCs. */
const HOSTS: Record<string, { name: ServiceName; rules: ReadonlyMap<string, Rule> }> = {
  'cloudpay.account.v1.AccountManagementService': { name: 'account-management', rules: rulesByPath(AccountManagementServiceService, accountRules) },
  'cloudpay.payment.v1.PaymentManagementService': { name: 'payment-management', rules: rulesByPath(PaymentManagementServiceService, paymentRules) },
  'cloudpay.events.v1.InstanceEventsService': { name: 'instance-events', rules: rulesByPath(InstanceEventsServiceService, eventRules) },
  'cloudpay.platform.v1.PaymentPlatformService': { name: 'payment-platform', rules: rulesByPath(PaymentPlatformServiceService, platformRules) },
  'cloudpay.app.v1.AppService': { name: 'app-service', rules: rulesByPath(AppServiceService, appRules) },
  'cloudpay.push.v1.PushRelayService': { name: 'push-relay', rules: rulesByPath(PushRelayServiceService, relayRules) },
}
const SERVER_FAULTS = new Set([Status.INTERNAL, Status.UNKNOWN, Status.DEADLINE_EXCEEDED, Status.DATA_LOSS])

function callerAllowedBy(rule: Rule): Identity {
  const role = rule.roles[0]!
  if (role === 'service') return { role, id: rule.services?.[0] ?? 'payment-management' }
  return { instance: INSTANCE, terminal: TERMINAL, operator: OPERATOR }[role]
}

let t: TestMesh
let services: DescService[]
const clients = new Map<string, Client>()

before(async () => {
  t = await startTestMesh()
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, await readFile(DESCRIPTOR_IMAGE)))
  services = [...registry].filter((d): d is DescService => d.kind === 'service')
  for (const name of Object.keys(HOSTS)) assert.ok(services.some((s) => s.typeName === name), `${name} is in the image`)
})
after(async () => {
  for (const client of clients.values()) client.close()
  await t?.stop()
})

/** Every cloudpay RPC with the service hosting it and a caller its rule admits. */
function cloudpayMethods(): { method: DescMethod; host: ServiceName; caller: Identity }[] {
  return services.flatMap((service) => {
    const host = HOSTS[service.typeName]
    if (!host) return []
    return service.methods.map((method) => {
      const rule = host.rules.get(pathOf(method))
      assert.ok(rule, `${pathOf(method)} has an authorization rule`)
      return { method, host: host.name, caller: callerAllowedBy(rule) }
    })
  })
}

async function clientOf(host: ServiceName, caller: Identity): Promise<Client> {
  const key = `${host} ${formatIdentity(caller)}`
  let client = clients.get(key)
  if (!client) clients.set(key, (client = rawClient(t.address(host), await t.credentials(caller))))
  return client
}

/** Runs `work` over `items`, a few at a time (the machine is small and shared). */
async function eachLimited<T>(items: readonly T[], work: (item: T) => Promise<void>, concurrency = 8): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++]!)
  }))
}

const describeOutcome = (o: Outcome) => `${Status[o.code]} "${o.details.slice(0, 120)}" [${o.violations.map((v) => v.field).join(', ')}]`

/** What is wrong with the outcome of one hostile case, or undefined if it was refused properly. */
function judge(c: HostileCase, outcome: Outcome): string | undefined {
  if (SERVER_FAULTS.has(outcome.code)) return `server fault: ${describeOutcome(outcome)}`
  if (!c.named) return undefined
  if (outcome.code !== Status.INVALID_ARGUMENT) return `expected INVALID_ARGUMENT, got ${describeOutcome(outcome)}`
  if (!outcome.violations.some((v) => v.field === c.field || v.field.startsWith(`${c.field}[`))) return `the refusal does not name ${c.field}: ${describeOutcome(outcome)}`
  if (outcome.details.length > 1024) return `the message is ${outcome.details.length} characters long`
  return undefined
}

test('every field of every cloudpay request: hostile strings, numbers and timestamps are refused naming the field', async () => {
  const work = cloudpayMethods().flatMap(({ method, host, caller }) => hostileCases(method.input).map((c) => ({ c, method, host, caller })))
  assert.ok(work.length > 200, `${work.length} cases`)
  const failures: string[] = []
  await eachLimited(work, async ({ c, method, host, caller }) => {
    const problem = judge(c, await rawCall(await clientOf(host, caller), method, c.body))
    if (problem) failures.push(`${pathOf(method)} ${c.field} = ${c.what}: ${problem}`)
  })
  assert.deepEqual(failures.sort(), [], `${failures.length} of ${work.length} cases failed:\n${failures.slice(0, 40).join('\n')}`)
})

test('a body that is not a protobuf message is INVALID_ARGUMENT on every RPC, health and reflection included', async () => {
  const hosted = new Set(['grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'])
  const shared = services.filter((s) => hosted.has(s.typeName)).flatMap((s) => s.methods.map((method) => ({ method, host: 'account-management' as const, caller: TERMINAL })))
  assert.equal(shared.length, 4)
  const work = [...cloudpayMethods(), ...shared].flatMap((m) => UNDECODABLE_BODIES.map((b) => ({ ...m, ...b })))
  const failures: string[] = []
  await eachLimited(work, async ({ method, host, caller, what, body }) => {
    const outcome = await rawCall(await clientOf(host, caller), method, body)
    if (outcome.code !== Status.INVALID_ARGUMENT || !/request/.test(outcome.details)) failures.push(`${pathOf(method)} ${what}: ${describeOutcome(outcome)}`)
  })
  assert.deepEqual(failures.sort(), [], `${failures.length} of ${work.length} cases failed:\n${failures.slice(0, 40).join('\n')}`)
})
