// The push relay's record of wakes (services/push-relay/store) paged as ListWakes pages it, with
// the one pagination helper (runtime/pagination.ts) over a real newest-first list, no gRPC: every
// wake once across the pages, newest first, one terminal's only when filtered, and a token that
// is good only for the filter it was issued with.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { pushRelay } from '../../services/push-relay/server.ts'
import * as store from '../../services/push-relay/store/repository.ts'
import type { PushRelayDatabase } from '../../services/push-relay/store/tables.ts'
import { listPage, type PageContext, SEQUENCE_CURSOR } from '../../services/runtime/pagination.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<PushRelayDatabase>(pushRelay)
const ctx: PageContext = { caller: { role: 'operator', id: 'ops' }, method: 'cloudpay.push.v1.PushRelayService/ListWakes', fingerprints: new Sealer(randomBytes(32)) }

/** One ListWakes page, as the handler asks for it. */
const listWakes = (terminalId: string, pageSize: number, pageToken: string) =>
  listPage(
    ctx,
    { pageSize, pageToken },
    {
      filter: { terminalId },
      cursor: SEQUENCE_CURSOR,
      fetch: (before, limit) => store.listWakes(service.db, terminalId, before, limit),
      cursorOf: (row) => row.seq,
    },
  )

async function allPages(terminalId: string, pageSize: number): Promise<{ subjects: string[]; pages: number }> {
  const subjects: string[] = []
  let pages = 0
  let token = ''
  do {
    const page = await listWakes(terminalId, pageSize, token)
    subjects.push(...page.items.map((w) => w.subject_id))
    token = page.nextPageToken
    pages++
  } while (token !== '')
  return { subjects, pages }
}

test(`wakes page newest first, each once, one terminal's only when filtered; a token is bound to its filter (${DATABASE_KIND})`, async () => {
  const phone = `phone-${randomUUID().slice(0, 8)}`
  const tablet = `tablet-${randomUUID().slice(0, 8)}`
  const recorded: string[] = []
  for (let i = 0; i < 7; i++) {
    const subjectId = `order-${i}`
    await store.insertWake(service.db, { terminalId: i % 3 === 2 ? tablet : phone, kind: 'PAYMENT_PUSHED', subjectId, requestedBy: 'service/payment-management' })
    recorded.push(subjectId)
  }
  const phoneWakes = recorded.filter((_, i) => i % 3 !== 2).reverse()
  assert.deepEqual(await allPages(phone, 2), { subjects: phoneWakes, pages: 3 }, 'newest first, every wake once, no empty last page')
  assert.deepEqual((await allPages(phone, 5)).pages, 1, 'a page exactly as long as the list has no next page')
  assert.deepEqual((await allPages('', 3)).subjects.slice(0, 7), [...recorded].reverse(), 'unfiltered: every terminal')

  const first = await listWakes(phone, 2, '')
  await refusedWith(listWakes(tablet, 2, first.nextPageToken), 'INVALID_PAGE_TOKEN')
  assert.deepEqual(
    (await listWakes(phone, 2, first.nextPageToken)).items.map((w) => w.subject_id),
    phoneWakes.slice(2, 4),
  )
})
