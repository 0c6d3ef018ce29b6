"""``mattekit benchmark`` (:mod:`.command`): methods x datasets under one protocol. Importing a
part (a classical method's worker imports :mod:`.classical_method`) loads only that part."""
