// Migrations of the push_relay schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_12_01_2001_initial.ts'

export const migrations: Record<string, Migration> = {
  '2026_12_01_2001_initial': initial,
}
