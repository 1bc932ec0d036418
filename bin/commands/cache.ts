export async function cacheCommand (..._a: any[]): Promise<number> { throw new Error('not yet') }
