/** Where Debian installs PostgreSQL: one `<version>/bin` directory per installed major version. */
export declare const DEBIAN_ROOT: string
/** Whether `dir` holds both server binaries (initdb and postgres). */
export declare function hasServerBinaries(dir: string): boolean
/** The newest Debian PostgreSQL bin directory holding the server binaries, or undefined. */
export declare function findDebianBinDir(): string | undefined
