// Channels between instances and terminals, over real gRPC: the operator opens and closes them,
// a terminal learns its device from them and sees only its own, services check them.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { ChannelState } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, TERMINAL, type TestMesh } from '../helpers/mesh.ts'
import { instanceEvents } from '../../services/instance-events/server.ts'

let t: TestMesh
before(async () => {
  t = await startTestMesh({ services: [instanceEvents] })
})
after(async () => t?.stop())

test('operator opens a channel; the terminal finds its device in it; a service checks it; closing ends it', async () => {
  const operator = await t.client('instance-events', OPERATOR)
  const terminal = await t.client('instance-events', TERMINAL)
  const service = await t.client('instance-events', { role: 'service', id: 'account-management' })

  const opened = await unaryCall(operator, 'openChannel', { requestId: newRequestId(), deviceId: 'device-42', terminalId: TERMINAL.id })
  assert.equal(opened.channel?.state, ChannelState.CHANNEL_STATE_OPEN)
  const duplicate = await expectStatus(unaryCall(operator, 'openChannel', { requestId: newRequestId(), deviceId: 'device-42', terminalId: TERMINAL.id }), Status.ALREADY_EXISTS)
  assert.equal(duplicate.reason, 'CHANNEL_ALREADY_OPEN')

  const mine = await unaryCall(terminal, 'listChannels', { terminalId: '', deviceId: '', includeClosed: false, pageSize: 0, pageToken: '' })
  assert.deepEqual(
    mine.channels.map((c) => c.deviceId),
    ['device-42'],
  )
  await expectStatus(
    unaryCall(terminal, 'listChannels', { terminalId: 'someone-else', deviceId: '', includeClosed: false, pageSize: 0, pageToken: '' }),
    Status.PERMISSION_DENIED,
    'own channels',
  )

  assert.deepEqual(await unaryCall(service, 'checkChannel', { deviceId: 'device-42', terminalId: TERMINAL.id }), { open: true, channelId: opened.channel!.channelId })
  await expectStatus(unaryCall(terminal, 'checkChannel', { deviceId: 'device-42', terminalId: TERMINAL.id }), Status.PERMISSION_DENIED)

  const closed = await unaryCall(operator, 'closeChannel', { requestId: newRequestId(), channelId: opened.channel!.channelId })
  assert.equal(closed.channel?.state, ChannelState.CHANNEL_STATE_CLOSED)
  assert.ok(closed.channel?.closeTime)
  const again = await expectStatus(unaryCall(operator, 'closeChannel', { requestId: newRequestId(), channelId: opened.channel!.channelId }), Status.FAILED_PRECONDITION)
  assert.equal(again.reason, 'CHANNEL_CLOSED')
  await expectStatus(unaryCall(operator, 'closeChannel', { requestId: newRequestId(), channelId: newRequestId() }), Status.NOT_FOUND)
  await expectStatus(unaryCall(operator, 'closeChannel', { requestId: newRequestId(), channelId: 'no-such-channel' }), Status.INVALID_ARGUMENT, 'channel_id')
  assert.equal((await unaryCall(service, 'checkChannel', { deviceId: 'device-42', terminalId: TERMINAL.id })).open, false)
})

test('bad ids are refused field by field', async () => {
  const operator = await t.client('instance-events', OPERATOR)
  const { violations } = await expectStatus(unaryCall(operator, 'openChannel', { requestId: newRequestId(), deviceId: 'bad id!', terminalId: '' }), Status.INVALID_ARGUMENT)
  assert.deepEqual(violations.map((v) => v.field).sort(), ['device_id', 'terminal_id'])
})
