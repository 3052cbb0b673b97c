// AppService in its own process (the production shape): `npm run service -- app-service`.
import { runServiceProcess } from '../runtime/process.ts'
import { appService } from './server.ts'

await runServiceProcess([appService])
