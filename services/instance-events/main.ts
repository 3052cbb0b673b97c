// InstanceEvents in its own process (the production shape): `npm run service -- instance-events`.
import { runServiceProcess } from '../runtime/process.ts'
import { instanceEvents } from './server.ts'

await runServiceProcess([instanceEvents])
