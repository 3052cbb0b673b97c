// PaymentPlatform in its own process (the production shape): `npm run service -- payment-platform`.
import { runServiceProcess } from '../runtime/process.ts'
import { paymentPlatform } from './server.ts'

await runServiceProcess([paymentPlatform])
