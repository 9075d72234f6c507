// Cursor pagination shared by every list endpoint.

/** A page of a list endpoint. */
export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

/** Every item of every page, fetching the next page only when the previous one is consumed. */
export async function* allItems<T>(
  fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
): AsyncGenerator<T, void, undefined> {
  let cursor: string | undefined;
  for (;;) {
    const page = await fetchPage(cursor);
    yield* page.items;
    if (page.next_cursor === null || page.next_cursor === undefined || page.items.length === 0) return;
    cursor = page.next_cursor;
  }
}
