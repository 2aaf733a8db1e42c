import ArgumentParser

struct PreloadPathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preload-path",
        abstract: "Print the absolute path of libmalloctrace.so, for tracing without `malloctrace run`.",
        discussion: """
            Example:
              LD_PRELOAD=$(malloctrace preload-path) MALLOCTRACE_OUTPUT=/tmp/app.%p.mtrace ./app
            The MALLOCTRACE_* variables are listed in the README.
            """
    )

    func run() throws {
        try StandardOutput.write(try PreloadLibrary.locate() + "\n")
    }
}
