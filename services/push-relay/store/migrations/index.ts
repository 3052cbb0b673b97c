// Migrations of the push_relay schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_12_01_2001_initial.ts'
import * as wakesAge from './2026_12_01_2002_wakes_age.ts'

export const migrations: Record<string, Migration> = {
  '2026_12_01_2001_initial': initial,
  '2026_12_01_2002_wakes_age': wakesAge,
}
