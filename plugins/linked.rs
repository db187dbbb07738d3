// The plugin crates the `zoo` binary links (statically), one `link()` call each so that the
// linker keeps their registrations. `zoo new-algo NAME` adds a line in the block.
{
    zoo_rloo::link();
}
