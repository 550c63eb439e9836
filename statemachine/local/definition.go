package local

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Machine is a loaded, validated state machine definition. It is immutable
// and safe for concurrent use: Execute may be called from several goroutines.
type Machine struct {
	comment        string
	timeoutSeconds int64
	root           *stateList
	// varNames holds every variable any Assign of the definition can set.
	varNames map[string]bool
	// needsInvoker: a Task calls Lambda; needsS3: an ItemReader, a
	// ResultWriter exporting to S3 or an aws-sdk:s3 Task.
	needsInvoker, needsS3 bool
}

// Comment returns the definition's top-level Comment.
func (m *Machine) Comment() string { return m.comment }

type stateList struct {
	startAt     string
	states      map[string]*state
	distributed bool // the ItemProcessor of a Distributed Map
}

// Integrations a Task can use.
const (
	integrationLambdaInvoke   = iota + 1 // arn:aws:states:::lambda:invoke
	integrationLambdaFunction            // arn:aws:lambda:...:function:name
	integrationDescribeMapRun            // arn:aws:states:::aws-sdk:sfn:describeMapRun
	integrationS3GetObject               // arn:aws:states:::aws-sdk:s3:getObject
)

type state struct {
	name string
	typ  string
	next string
	end  bool

	output template // nil: the default output
	assign template // nil: no assignments; evaluates to an object

	// Task
	resource    string
	integration int
	arguments   template // nil: the state input
	timeout     template // nil: no timeout
	retry       []*retrier
	catch       []*catcher

	// Choice
	choices     []*choiceRule
	defaultNext string

	// Wait
	seconds template

	// Fail
	errorT, causeT template

	// Map
	items          template // nil: the state input
	itemSelector   template // nil: the item
	processor      *stateList
	distributed    bool
	maxConcurrency template
	toleratedPct   template
	toleratedCount template
	label          string
	itemReader     *itemReader   // nil: Items (or the state input)
	resultWriter   *resultWriter // nil: the children's outputs are the result
}

type retrier struct {
	errorEquals []string
	interval    time.Duration
	maxAttempts int
	backoffRate float64
	maxDelay    time.Duration // 0: no cap
	jitterFull  bool
}

type catcher struct {
	errorEquals []string
	next        string
	output      template
	assign      template
}

type choiceRule struct {
	condition template
	next      string
	output    template
	assign    template
}

// Fields accepted by every JSONata state, and per state type. Anything else
// (JSONPath fields such as InputPath, Parameters, ResultPath,
// ResultSelector, OutputPath, or unsupported features such as ItemBatcher,
// HeartbeatSeconds, Credentials) is refused by name.
var (
	commonFields = []string{"Type", "Comment", "QueryLanguage"}
	stateFields  = map[string][]string{
		"Pass":    {"Next", "End", "Output", "Assign"},
		"Task":    {"Next", "End", "Output", "Assign", "Resource", "Arguments", "TimeoutSeconds", "Retry", "Catch"},
		"Choice":  {"Choices", "Default", "Output", "Assign"},
		"Wait":    {"Next", "End", "Output", "Assign", "Seconds"},
		"Succeed": {"Output"},
		"Fail":    {"Error", "Cause"},
		"Map": {"Next", "End", "Output", "Assign", "Items", "ItemSelector", "ItemProcessor", "MaxConcurrency",
			"ToleratedFailurePercentage", "ToleratedFailureCount", "Label", "ItemReader", "ResultWriter", "Retry", "Catch"},
	}
	topFields       = []string{"StartAt", "States", "Comment", "TimeoutSeconds", "Version", "QueryLanguage"}
	processorFields = []string{"StartAt", "States", "ProcessorConfig", "Comment"}
	retrierFields   = []string{"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"}
	catcherFields   = []string{"ErrorEquals", "Next", "Output", "Assign", "Comment"}
	choiceFields    = []string{"Condition", "Next", "Output", "Assign", "Comment"}
)

var (
	lambdaInvokeResource   = regexp.MustCompile(`^arn:aws[a-z-]*:states:::lambda:invoke$`)
	lambdaIntegrationOther = regexp.MustCompile(`^arn:aws[a-z-]*:states:::lambda:invoke\.`)
	lambdaFunctionResource = regexp.MustCompile(`^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$`)
	// sdkResource is an AWS SDK service integration: service, action and
	// an optional integration pattern (.waitForTaskToken).
	sdkResource = regexp.MustCompile(`^arn:aws[a-z-]*:states:::aws-sdk:([a-z0-9]+):([A-Za-z0-9]+)(\..*)?$`)
)

// Load parses and validates a state machine definition written in the
// JSONata query language. It refuses, naming the field or type, anything the
// executor does not run (see the package documentation), and checks that
// StartAt and every Next, Default and Catch target exist, that every state
// is reachable and that non-terminal states say where to go.
func Load(definition []byte) (*Machine, error) {
	var raw any
	if err := json.Unmarshal(definition, &raw); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %w", ErrInvalidDefinition, err)
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid("the definition must be a JSON object")
	}
	if err := onlyFields(top, topFields, func(f string) error {
		return invalid("unsupported top-level field %q", f)
	}); err != nil {
		return nil, err
	}
	p := &parser{names: map[string]bool{}, vars: map[string]bool{}}
	m := &Machine{}
	var err error
	if m.comment, _, err = optString(top, "Comment", "the definition"); err != nil {
		return nil, err
	}
	if _, _, err = optString(top, "Version", "the definition"); err != nil {
		return nil, err
	}
	ql := "JSONPath"
	if s, ok, err := optString(top, "QueryLanguage", "the definition"); err != nil {
		return nil, err
	} else if ok {
		if s != "JSONata" && s != "JSONPath" {
			return nil, invalid("unknown QueryLanguage %q", s)
		}
		ql = s
	}
	if v, ok := top["TimeoutSeconds"]; ok {
		n, isInt := asInteger(v)
		if !isInt || n <= 0 || n > 99999999 {
			return nil, invalid("top-level TimeoutSeconds must be a positive integer")
		}
		m.timeoutSeconds = n
	}
	if m.root, err = p.stateList(top, ql, "the definition", false); err != nil {
		return nil, err
	}
	m.varNames = p.vars
	m.needsInvoker, m.needsS3 = p.needsInvoker, p.needsS3
	return m, nil
}

type parser struct {
	names                 map[string]bool
	vars                  map[string]bool
	needsInvoker, needsS3 bool
}

func onlyFields(obj map[string]any, allowed []string, refuse func(field string) error) error {
	for _, k := range sortedKeys(obj) {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			return refuse(k)
		}
	}
	return nil
}

func optString(obj map[string]any, field, where string) (string, bool, error) {
	v, ok := obj[field]
	if !ok {
		return "", false, nil
	}
	s, isString := v.(string)
	if !isString {
		return "", false, invalid("field %q in %s must be a string", field, where)
	}
	return s, true, nil
}

// stateList parses StartAt and States of the top level or of an
// ItemProcessor and checks its transitions.
func (p *parser) stateList(obj map[string]any, ql, where string, distributed bool) (*stateList, error) {
	startAt, ok, err := optString(obj, "StartAt", where)
	if err != nil {
		return nil, err
	}
	if !ok || startAt == "" {
		return nil, invalid("%s has no StartAt", where)
	}
	rawStates, ok := obj["States"].(map[string]any)
	if !ok || len(rawStates) == 0 {
		return nil, invalid("%s has no States", where)
	}
	sl := &stateList{startAt: startAt, states: map[string]*state{}, distributed: distributed}
	for _, name := range sortedKeys(rawStates) {
		if p.names[name] {
			return nil, invalid("duplicate state name %q", name)
		}
		p.names[name] = true
		st, err := p.state(name, rawStates[name], ql)
		if err != nil {
			return nil, err
		}
		sl.states[name] = st
	}
	if sl.states[startAt] == nil {
		return nil, invalid("StartAt %q of %s is not a state of %s", startAt, where, where)
	}
	// Every transition must stay inside this list of states.
	for _, name := range sortedKeys(sl.states) {
		st := sl.states[name]
		for _, t := range st.targets() {
			if sl.states[t.to] == nil {
				return nil, invalid("state %q: %s %q does not name a state of %s", name, t.field, t.to, where)
			}
		}
	}
	// Every state must be reachable from StartAt.
	seen := map[string]bool{startAt: true}
	queue := []string{startAt}
	for len(queue) > 0 {
		st := sl.states[queue[0]]
		queue = queue[1:]
		for _, t := range st.targets() {
			if !seen[t.to] {
				seen[t.to] = true
				queue = append(queue, t.to)
			}
		}
	}
	for _, name := range sortedKeys(sl.states) {
		if !seen[name] {
			return nil, invalid("state %q is not reachable from StartAt %q", name, startAt)
		}
	}
	return sl, nil
}

type transition struct{ field, to string }

func (st *state) targets() []transition {
	var out []transition
	if st.next != "" {
		out = append(out, transition{"Next", st.next})
	}
	for _, c := range st.choices {
		out = append(out, transition{"Choices Next", c.next})
	}
	if st.defaultNext != "" {
		out = append(out, transition{"Default", st.defaultNext})
	}
	for _, c := range st.catch {
		out = append(out, transition{"Catch Next", c.next})
	}
	return out
}

func (p *parser) state(name string, raw any, inheritedQL string) (*state, error) {
	if len(name) == 0 || len(name) > 80 {
		return nil, invalid("state name %q must be 1 to 80 characters long", name)
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid("state %q must be a JSON object", name)
	}
	typ, ok, err := optString(obj, "Type", fmt.Sprintf("state %q", name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalid("state %q has no Type", name)
	}
	fields, known := stateFields[typ]
	if !known {
		return nil, invalid("unsupported state type %q in state %q", typ, name)
	}
	ql := inheritedQL
	if s, ok, err := optString(obj, "QueryLanguage", fmt.Sprintf("state %q", name)); err != nil {
		return nil, err
	} else if ok {
		if s != "JSONata" && s != "JSONPath" {
			return nil, invalid("unknown QueryLanguage %q in state %q", s, name)
		}
		ql = s
	}
	if ql != "JSONata" {
		return nil, invalid("state %q uses the JSONPath query language; only JSONata states are supported (set \"QueryLanguage\": \"JSONata\")", name)
	}
	if err := onlyFields(obj, append(append([]string{}, commonFields...), fields...), func(f string) error {
		return invalid("unsupported field %q in state %q", f, name)
	}); err != nil {
		return nil, err
	}
	if _, _, err := optString(obj, "Comment", fmt.Sprintf("state %q", name)); err != nil {
		return nil, err
	}
	st := &state{name: name, typ: typ}
	if err := p.transitionFields(st, obj); err != nil {
		return nil, err
	}
	if v, ok := obj["Output"]; ok {
		if st.output, err = p.template(v, name, "Output"); err != nil {
			return nil, err
		}
	}
	if v, ok := obj["Assign"]; ok {
		if st.assign, err = p.assignment(v, name, "Assign"); err != nil {
			return nil, err
		}
	}
	switch typ {
	case "Task":
		err = p.task(st, obj)
	case "Choice":
		err = p.choice(st, obj)
	case "Wait":
		err = p.wait(st, obj)
	case "Fail":
		err = p.fail(st, obj)
	case "Map":
		err = p.mapState(st, obj, ql)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// transitionFields reads Next and End: Pass, Task, Wait and Map need exactly
// one of them; Choice, Succeed and Fail have neither (their field lists
// refuse them).
func (p *parser) transitionFields(st *state, obj map[string]any) error {
	switch st.typ {
	case "Choice", "Succeed", "Fail":
		return nil
	}
	next, hasNext, err := optString(obj, "Next", fmt.Sprintf("state %q", st.name))
	if err != nil {
		return err
	}
	end := false
	if v, ok := obj["End"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return invalid("field \"End\" in state %q must be a boolean", st.name)
		}
		end = b
	}
	switch {
	case hasNext && end:
		return invalid("state %q has both Next and End", st.name)
	case !hasNext && !end:
		return invalid("state %q is not terminal but has no Next (add \"Next\" or \"End\": true)", st.name)
	case hasNext && next == "":
		return invalid("state %q has an empty Next", st.name)
	}
	st.next, st.end = next, end
	return nil
}

func (p *parser) template(v any, stateName, field string) (template, error) {
	t, err := compileTemplate(v)
	if err != nil {
		return nil, invalid("state %q: field %q: invalid JSONata expression: %v", stateName, field, err)
	}
	return t, nil
}

var varName = regexp.MustCompile(`^[\p{L}_][\p{L}\p{N}_]*$`)

// assignment compiles an Assign object and records the variable names.
func (p *parser) assignment(v any, stateName, field string) (template, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("state %q: field %q must be a JSON object of variable names to values", stateName, field)
	}
	for _, k := range sortedKeys(obj) {
		if !varName.MatchString(k) || len(k) > 80 {
			return nil, invalid("state %q: %q is not a valid variable name", stateName, k)
		}
		if k == "states" {
			return nil, invalid("state %q: the variable name \"states\" is reserved", stateName)
		}
		p.vars[k] = true
	}
	return p.template(obj, stateName, field)
}

// numberField compiles a field that holds a number or a JSONata expression
// producing one; check validates a literal.
func (p *parser) numberField(obj map[string]any, field, stateName string, check func(float64) bool, want string) (template, error) {
	v, ok := obj[field]
	if !ok {
		return nil, nil
	}
	switch t := v.(type) {
	case float64:
		if !check(t) {
			return nil, invalid("field %q in state %q must be %s", field, stateName, want)
		}
		return literal{t}, nil
	case string:
		if isExpression(t) {
			return p.template(t, stateName, field)
		}
	}
	return nil, invalid("field %q in state %q must be %s or a JSONata expression", field, stateName, want)
}

func isNonNegativeInt(f float64) bool { return f >= 0 && f == math.Trunc(f) && f <= 99999999 }
func isPositiveInt(f float64) bool    { return f > 0 && f == math.Trunc(f) && f <= 99999999 }

func (p *parser) task(st *state, obj map[string]any) error {
	res, ok, err := optString(obj, "Resource", fmt.Sprintf("state %q", st.name))
	if err != nil {
		return err
	}
	if !ok {
		return invalid("state %q has no Resource", st.name)
	}
	st.resource = res
	// Arguments members each integration requires and accepts, when the
	// Arguments are an object literal (an expression is checked when it is
	// evaluated).
	var required, accepted []string
	switch {
	case lambdaInvokeResource.MatchString(res):
		st.integration = integrationLambdaInvoke
		p.needsInvoker = true
	case lambdaIntegrationOther.MatchString(res):
		return invalid("unsupported resource %q in state %q: only the request-response lambda:invoke integration is supported (no .sync or .waitForTaskToken)", res, st.name)
	case lambdaFunctionResource.MatchString(res):
		st.integration = integrationLambdaFunction
		p.needsInvoker = true
	case sdkResource.MatchString(res):
		m := sdkResource.FindStringSubmatch(res)
		switch {
		case m[3] != "":
			return invalid("unsupported resource %q in state %q: AWS SDK integrations run request-response only (no %s)", res, st.name, m[3])
		case m[1] == "sfn" && m[2] == "describeMapRun":
			st.integration = integrationDescribeMapRun
			required, accepted = []string{"MapRunArn"}, []string{"MapRunArn"}
		case m[1] == "s3" && m[2] == "getObject":
			st.integration = integrationS3GetObject
			required, accepted = []string{"Bucket", "Key"}, []string{"Bucket", "Key"}
			p.needsS3 = true
		default:
			return invalid("unsupported resource %q in state %q: the AWS SDK integrations supported are aws-sdk:sfn:describeMapRun and aws-sdk:s3:getObject", res, st.name)
		}
	default:
		return invalid("unsupported resource %q in state %q: only arn:aws:states:::lambda:invoke, Lambda function ARNs, arn:aws:states:::aws-sdk:sfn:describeMapRun and arn:aws:states:::aws-sdk:s3:getObject are supported", res, st.name)
	}
	if st.integration == integrationLambdaInvoke {
		required = []string{"FunctionName"}
	}
	if v, ok := obj["Arguments"]; ok {
		if st.arguments, err = p.template(v, st.name, "Arguments"); err != nil {
			return err
		}
		if args, isObj := v.(map[string]any); isObj {
			for _, f := range required {
				if _, has := args[f]; !has {
					return invalid("state %q: the Arguments of %s need a %s", st.name, integrationName(st.integration), f)
				}
			}
			if accepted != nil {
				if err := onlyFields(args, accepted, func(f string) error {
					return invalid("unsupported argument %q of %s in state %q", f, integrationName(st.integration), st.name)
				}); err != nil {
					return err
				}
			}
		}
	} else if len(required) > 0 {
		return invalid("state %q: %s needs Arguments with %s", st.name, integrationName(st.integration), strings.Join(required, " and "))
	}
	if st.timeout, err = p.numberField(obj, "TimeoutSeconds", st.name, isPositiveInt, "a positive integer"); err != nil {
		return err
	}
	return p.errorHandling(st, obj)
}

// integrationName names a Task integration in messages.
func integrationName(integration int) string {
	switch integration {
	case integrationLambdaInvoke:
		return "lambda:invoke"
	case integrationDescribeMapRun:
		return "aws-sdk:sfn:describeMapRun"
	case integrationS3GetObject:
		return "aws-sdk:s3:getObject"
	}
	return "a Lambda function"
}

func (p *parser) errorHandling(st *state, obj map[string]any) error {
	if v, ok := obj["Retry"]; ok {
		list, isList := v.([]any)
		if !isList {
			return invalid("field \"Retry\" in state %q must be an array", st.name)
		}
		for i, item := range list {
			r, err := p.retrier(st.name, i, item, i == len(list)-1)
			if err != nil {
				return err
			}
			st.retry = append(st.retry, r)
		}
	}
	if v, ok := obj["Catch"]; ok {
		list, isList := v.([]any)
		if !isList {
			return invalid("field \"Catch\" in state %q must be an array", st.name)
		}
		for i, item := range list {
			c, err := p.catcher(st.name, i, item, i == len(list)-1)
			if err != nil {
				return err
			}
			st.catch = append(st.catch, c)
		}
	}
	return nil
}

func (p *parser) errorEquals(stateName, where string, obj map[string]any, last bool) ([]string, error) {
	list, ok := obj["ErrorEquals"].([]any)
	if !ok || len(list) == 0 {
		return nil, invalid("state %q: %s needs a non-empty ErrorEquals array", stateName, where)
	}
	var out []string
	for _, x := range list {
		s, isString := x.(string)
		if !isString || s == "" {
			return nil, invalid("state %q: %s: ErrorEquals must hold error names", stateName, where)
		}
		if s == ErrorAll && (len(list) != 1 || !last) {
			return nil, invalid("state %q: %s: States.ALL must appear alone, in the last element", stateName, where)
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) retrier(stateName string, i int, raw any, last bool) (*retrier, error) {
	where := fmt.Sprintf("Retry[%d]", i)
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid("state %q: %s must be an object", stateName, where)
	}
	if err := onlyFields(obj, retrierFields, func(f string) error {
		return invalid("unsupported field %q in %s of state %q", f, where, stateName)
	}); err != nil {
		return nil, err
	}
	r := &retrier{interval: time.Second, maxAttempts: 3, backoffRate: 2}
	var err error
	if r.errorEquals, err = p.errorEquals(stateName, where, obj, last); err != nil {
		return nil, err
	}
	intField := func(field string, check func(float64) bool, want string) (int64, bool, error) {
		v, ok := obj[field]
		if !ok {
			return 0, false, nil
		}
		f, isNum := v.(float64)
		if !isNum || !check(f) {
			return 0, false, invalid("state %q: %s: %s must be %s", stateName, where, field, want)
		}
		return int64(f), true, nil
	}
	if n, ok, err := intField("IntervalSeconds", isPositiveInt, "a positive integer"); err != nil {
		return nil, err
	} else if ok {
		r.interval = time.Duration(n) * time.Second
	}
	if n, ok, err := intField("MaxAttempts", isNonNegativeInt, "a non-negative integer"); err != nil {
		return nil, err
	} else if ok {
		r.maxAttempts = int(n)
	}
	if n, ok, err := intField("MaxDelaySeconds", isPositiveInt, "a positive integer"); err != nil {
		return nil, err
	} else if ok {
		r.maxDelay = time.Duration(n) * time.Second
	}
	if v, ok := obj["BackoffRate"]; ok {
		f, isNum := v.(float64)
		if !isNum || f < 1 {
			return nil, invalid("state %q: %s: BackoffRate must be a number >= 1.0", stateName, where)
		}
		r.backoffRate = f
	}
	if v, ok := obj["JitterStrategy"]; ok {
		switch v {
		case "FULL":
			r.jitterFull = true
		case "NONE":
		default:
			return nil, invalid("state %q: %s: JitterStrategy must be FULL or NONE", stateName, where)
		}
	}
	return r, nil
}

func (p *parser) catcher(stateName string, i int, raw any, last bool) (*catcher, error) {
	where := fmt.Sprintf("Catch[%d]", i)
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid("state %q: %s must be an object", stateName, where)
	}
	if err := onlyFields(obj, catcherFields, func(f string) error {
		return invalid("unsupported field %q in %s of state %q", f, where, stateName)
	}); err != nil {
		return nil, err
	}
	c := &catcher{}
	var err error
	if c.errorEquals, err = p.errorEquals(stateName, where, obj, last); err != nil {
		return nil, err
	}
	next, ok, err := optString(obj, "Next", fmt.Sprintf("%s of state %q", where, stateName))
	if err != nil {
		return nil, err
	}
	if !ok || next == "" {
		return nil, invalid("state %q: %s has no Next", stateName, where)
	}
	c.next = next
	if v, ok := obj["Output"]; ok {
		if c.output, err = p.template(v, stateName, where+"/Output"); err != nil {
			return nil, err
		}
	}
	if v, ok := obj["Assign"]; ok {
		if c.assign, err = p.assignment(v, stateName, where+"/Assign"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (p *parser) choice(st *state, obj map[string]any) error {
	list, ok := obj["Choices"].([]any)
	if !ok || len(list) == 0 {
		return invalid("Choice state %q needs a non-empty Choices array", st.name)
	}
	for i, raw := range list {
		where := fmt.Sprintf("Choices[%d]", i)
		rule, isObj := raw.(map[string]any)
		if !isObj {
			return invalid("state %q: %s must be an object", st.name, where)
		}
		if err := onlyFields(rule, choiceFields, func(f string) error {
			return invalid("unsupported field %q in %s of state %q", f, where, st.name)
		}); err != nil {
			return err
		}
		c := &choiceRule{}
		switch cond := rule["Condition"].(type) {
		case bool:
			c.condition = literal{cond}
		case string:
			if !isExpression(cond) {
				return invalid("state %q: %s: Condition must be a JSONata expression \"{%% ... %%}\"", st.name, where)
			}
			t, err := p.template(cond, st.name, where+"/Condition")
			if err != nil {
				return err
			}
			c.condition = t
		default:
			return invalid("state %q: %s needs a Condition", st.name, where)
		}
		next, ok, err := optString(rule, "Next", fmt.Sprintf("%s of state %q", where, st.name))
		if err != nil {
			return err
		}
		if !ok || next == "" {
			return invalid("state %q: %s has no Next", st.name, where)
		}
		c.next = next
		if v, ok := rule["Output"]; ok {
			if c.output, err = p.template(v, st.name, where+"/Output"); err != nil {
				return err
			}
		}
		if v, ok := rule["Assign"]; ok {
			if c.assign, err = p.assignment(v, st.name, where+"/Assign"); err != nil {
				return err
			}
		}
		st.choices = append(st.choices, c)
	}
	def, _, err := optString(obj, "Default", fmt.Sprintf("state %q", st.name))
	if err != nil {
		return err
	}
	st.defaultNext = def
	return nil
}

func (p *parser) wait(st *state, obj map[string]any) error {
	var err error
	if st.seconds, err = p.numberField(obj, "Seconds", st.name, isNonNegativeInt, "a non-negative integer"); err != nil {
		return err
	}
	if st.seconds == nil {
		return invalid("Wait state %q needs Seconds (Timestamp is not supported)", st.name)
	}
	return nil
}

func (p *parser) fail(st *state, obj map[string]any) error {
	for _, field := range []string{"Error", "Cause"} {
		v, ok := obj[field]
		if !ok {
			continue
		}
		if _, isString := v.(string); !isString {
			return invalid("field %q in state %q must be a string or a JSONata expression", field, st.name)
		}
		t, err := p.template(v, st.name, field)
		if err != nil {
			return err
		}
		if field == "Error" {
			st.errorT = t
		} else {
			st.causeT = t
		}
	}
	return nil
}

func (p *parser) mapState(st *state, obj map[string]any, ql string) error {
	var err error
	if v, ok := obj["Items"]; ok {
		switch t := v.(type) {
		case []any:
		case string:
			if !isExpression(t) {
				return invalid("field \"Items\" in state %q must be an array or a JSONata expression", st.name)
			}
		default:
			return invalid("field \"Items\" in state %q must be an array or a JSONata expression", st.name)
		}
		if st.items, err = p.template(v, st.name, "Items"); err != nil {
			return err
		}
	}
	if v, ok := obj["ItemSelector"]; ok {
		if st.itemSelector, err = p.template(v, st.name, "ItemSelector"); err != nil {
			return err
		}
	}
	if st.maxConcurrency, err = p.numberField(obj, "MaxConcurrency", st.name, isNonNegativeInt, "a non-negative integer"); err != nil {
		return err
	}
	if st.toleratedPct, err = p.numberField(obj, "ToleratedFailurePercentage", st.name,
		func(f float64) bool { return f >= 0 && f <= 100 }, "a number from 0 to 100"); err != nil {
		return err
	}
	if st.toleratedCount, err = p.numberField(obj, "ToleratedFailureCount", st.name, isNonNegativeInt, "a non-negative integer"); err != nil {
		return err
	}
	if st.label, _, err = optString(obj, "Label", fmt.Sprintf("state %q", st.name)); err != nil {
		return err
	}
	if len(st.label) > 40 || strings.ContainsFunc(st.label, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(`<>{}[]?*"#%\^|~`+"`$&,;:/", r) || unicode.IsControl(r)
	}) {
		return invalid("field \"Label\" in state %q must be at most 40 characters without spaces or special characters", st.name)
	}
	proc, ok := obj["ItemProcessor"].(map[string]any)
	if !ok {
		return invalid("Map state %q needs an ItemProcessor", st.name)
	}
	if err := onlyFields(proc, processorFields, func(f string) error {
		return invalid("unsupported field %q in the ItemProcessor of state %q", f, st.name)
	}); err != nil {
		return err
	}
	if cfg, ok := proc["ProcessorConfig"]; ok {
		c, isObj := cfg.(map[string]any)
		if !isObj {
			return invalid("the ProcessorConfig of state %q must be an object", st.name)
		}
		if err := onlyFields(c, []string{"Mode", "ExecutionType"}, func(f string) error {
			return invalid("unsupported field %q in the ProcessorConfig of state %q", f, st.name)
		}); err != nil {
			return err
		}
		switch c["Mode"] {
		case nil, "INLINE":
		case "DISTRIBUTED":
			st.distributed = true
		default:
			return invalid("unsupported ProcessorConfig Mode %v in state %q", c["Mode"], st.name)
		}
		switch c["ExecutionType"] {
		case nil:
		case "STANDARD":
			if !st.distributed {
				return invalid("ExecutionType in state %q requires Mode DISTRIBUTED", st.name)
			}
		default:
			return invalid("unsupported ExecutionType %v in state %q: only STANDARD child executions are supported", c["ExecutionType"], st.name)
		}
	}
	if !st.distributed {
		for _, f := range []string{"ToleratedFailurePercentage", "ToleratedFailureCount", "Label", "ItemReader", "ResultWriter"} {
			if _, ok := obj[f]; ok {
				return invalid("field %q in state %q requires ProcessorConfig Mode DISTRIBUTED", f, st.name)
			}
		}
	}
	if v, ok := obj["ItemReader"]; ok {
		if _, hasItems := obj["Items"]; hasItems {
			return invalid("state %q has both Items and ItemReader: use one", st.name)
		}
		if st.itemReader, err = p.itemReader(st.name, v); err != nil {
			return err
		}
		p.needsS3 = true
	}
	if v, ok := obj["ResultWriter"]; ok {
		if st.resultWriter, err = p.resultWriter(st.name, v); err != nil {
			return err
		}
		if st.resultWriter.resource != "" {
			p.needsS3 = true
		}
	}
	if err := p.errorHandling(st, obj); err != nil {
		return err
	}
	where := fmt.Sprintf("the ItemProcessor of state %q", st.name)
	st.processor, err = p.stateList(proc, ql, where, st.distributed)
	return err
}
