// Moved to protocol/expr.ts (the daemon evaluates START policies with it too).
export * from '../protocol/expr.ts'
