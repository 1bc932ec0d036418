export async function statusCommand (..._a: any[]): Promise<number> { throw new Error('not yet') }
export async function cancelCommand (..._a: any[]): Promise<number> { throw new Error('not yet') }
