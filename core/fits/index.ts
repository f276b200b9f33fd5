/** Our own FITS 4.0 reader and writer (see README: why not fitsjs). */
export { FitsError, type FitsErrorCode, MAX_ALLOCATION } from './errors.ts';
export { type ByteSource, FileByteSource, MemoryByteSource } from './bytesource.ts';
export { Header, type Card, type CardKind, type CardValue, type Complex, formatCard, serializeHeader, parseCards, BLOCK, CARD } from './header.ts';
export { type PixelArray, type Bitpix, type Scaling, dtypeName, decodePixels, encodePixels, storageFor } from './image-data.ts';
export { FitsReader, type Hdu, type ImageBand, type OpenOptions } from './reader.ts';
export { type HduKind } from './structure.ts';
export { decodeTable, encodeTable, parseTform, type Table, type Column, type ColumnInput, type ColumnValues } from './bintable.ts';
export { type CompressedLayout } from './compressed.ts';
export { FitsWriter, ImageStream, type ImageSpec, type WriterOptions } from './writer.ts';
export { type ByteSink, FileSink, MemorySink } from './sink.ts';
export { onesComplementSum, encodeChecksum, addOnesComplement } from './checksum.ts';
