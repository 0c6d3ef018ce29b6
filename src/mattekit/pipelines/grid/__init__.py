"""``mattekit grid`` (:mod:`.command`): a whole ablation table from one YAML file. The parts:
the file (:mod:`.spec`, :mod:`.placeholders`), the command lines (:mod:`.commands`), a fit or test
in its own process (:mod:`.process`), chained stages (:mod:`.stages`), running and recording
(:mod:`.runner`, :mod:`.results`), the picture (:mod:`.figure`). Importing a part loads only
that part (a grid's child process runs ``python -m mattekit.pipelines.grid.process``)."""
