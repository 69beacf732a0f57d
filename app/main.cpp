// The `sluice` binary: parses the command line and runs one command.
#include <exception>
#include <iostream>

#include "app/cli.h"

int main(int argc, char** argv) {
    try {
        sluice::app::Cli cli;
        return cli.run(argc, argv);
    } catch (const std::exception& e) {
        // A guard against bugs, never a control path: commands return statuses.
        std::cerr << "sluice: unexpected error: " << e.what() << "\n";
        return 70;
    }
}
