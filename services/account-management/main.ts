// AccountManagement in its own process (the production shape): `npm run service -- account-management`.
import { runServiceProcess } from '../runtime/process.ts'
import { accountManagement } from './server.ts'

await runServiceProcess([accountManagement])
