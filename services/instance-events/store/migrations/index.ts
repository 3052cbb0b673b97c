// Migrations of the instance_events schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_11_22_0001_initial.ts'
import * as events from './2026_11_22_0002_events.ts'
import * as eventTrace from './2026_11_22_0003_event_trace.ts'
import * as retention from './2026_12_01_0901_retention.ts'
import * as rentalFloor from './2026_12_01_3001_rental_floor.ts'
import * as eventRentals from './2026_12_01_4001_event_rentals.ts'

export const migrations: Record<string, Migration> = {
  '2026_11_22_0001_initial': initial,
  '2026_11_22_0002_events': events,
  '2026_11_22_0003_event_trace': eventTrace,
  '2026_12_01_0901_retention': retention,
  '2026_12_01_3001_rental_floor': rentalFloor,
  '2026_12_01_4001_event_rentals': eventRentals,
}
