import ArgumentParser

@main
struct MallocTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "malloctrace",
        abstract: "Trace every malloc, calloc, realloc and free of a program, then find its leaks and its peak.",
        discussion: """
            Typical use:
              malloctrace run -- ./myprogram --its-flags
              malloctrace report malloctrace.myprogram.4242.mtrace

            The tracer is a preload library (see `malloctrace preload-path`). It records calls, sizes, \
            pointers, threads, times and call stacks into a compact binary trace that `report` reads.
            """,
        version: "0.1.0",
        subcommands: [
            RunCommand.self, ReportCommand.self, CheckCommand.self, DiffCommand.self, FlamegraphCommand.self,
            ExportCommand.self, CompressCommand.self, CtlCommand.self,
            PreloadPathCommand.self,
        ]
    )
}
