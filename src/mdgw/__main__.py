from mdgw.cli import main

raise SystemExit(main())
