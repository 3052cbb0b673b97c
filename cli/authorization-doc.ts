// `npm run -s docs:authorization`: prints docs/authorization.md from the authorization rules.
import { matrixMarkdown } from '../services/authorization-matrix.ts'

process.stdout.write(matrixMarkdown())
