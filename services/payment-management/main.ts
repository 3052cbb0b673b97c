// PaymentManagement in its own process (the production shape): `npm run service -- payment-management`.
import { runServiceProcess } from '../runtime/process.ts'
import { paymentManagement } from './server.ts'

await runServiceProcess([paymentManagement])
