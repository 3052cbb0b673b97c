// Which rental of its device each event belongs to (rental-boundary.ts). An event about an
// earlier rental can be published after the release that ended it (ORDER_FAILED of an order the
// release cancelled): tagged with that rental's floor, it reaches that rental's readers only.
// device_streams keeps when the current rental began and the rental before it, to tag such events
// and to bound an instance's stored answers. Only additions: existing events above their stream's
// floor are tagged with it (the current rental's), the older ones keep 0.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('device_streams')
    .addColumn('rental_began_at', 'timestamptz')
    .addColumn('previous_rental_floor', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('previous_rental_began_at', 'timestamptz')
    .execute()
  await db.schema
    .alterTable('events')
    .addColumn('rental_floor', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()
  await db
    .updateTable('events')
    .from('device_streams')
    .set((eb) => ({ rental_floor: eb.ref('device_streams.rental_floor') }))
    .whereRef('device_streams.device_id', '=', 'events.device_id')
    .whereRef('events.sequence', '>', 'device_streams.rental_floor')
    .where('device_streams.rental_floor', '>', 0)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('events').dropColumn('rental_floor').execute()
  await db.schema.alterTable('device_streams').dropColumn('rental_began_at').dropColumn('previous_rental_floor').dropColumn('previous_rental_began_at').execute()
}
