from tickwriter.app import main

raise SystemExit(main())
