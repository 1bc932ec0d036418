export async function submitCommand (..._a: any[]): Promise<number> { throw new Error('not yet') }
