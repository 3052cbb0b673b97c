// Dead letters in the outbox: when and why a delivery that can never succeed was given up on
// (a refusal no retry changes, or too many attempts); due deliveries leave dead ones out.
import type { Kysely } from 'kysely'
import { addOutboxDeadLetters } from '../../../runtime/outbox.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await addOutboxDeadLetters(db)
}
