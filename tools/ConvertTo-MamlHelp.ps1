#Requires -Version 7.4
<#
.SYNOPSIS
    Compiles PlatyPS-style markdown cmdlet help (docs/help/*.md) into one MAML file for Get-Help.
.DESCRIPTION
    A small stand-in for Microsoft.PowerShell.PlatyPS's Export-MamlCommandHelp, in plain PowerShell with no module
    dependency. It reads every cmdlet page under -Path (YAML front matter, # Name, ## SYNOPSIS, ## SYNTAX,
    ## ALIASES, ## DESCRIPTION, ## EXAMPLES, ## PARAMETERS, ## INPUTS, ## OUTPUTS, ## NOTES, ## RELATED LINKS) and
    writes the MAML that Get-Help reads (<assembly>.dll-Help.xml next to the module's assembly, in en-US/).

    Both parameter metadata styles are understood: the PlatyPS 1.x schema (2024-05-01: Type, DefaultValue,
    SupportsWildcards, Aliases, ParameterSets with Position/IsRequired/ValueFromPipeline..., AcceptedValues) and the
    PlatyPS 0.x one (Type, Parameter Sets, Aliases, Required, Position, Default value, Accept pipeline input,
    Accept wildcard characters, Accepted values).

    Broken help fails: a page without a synopsis, a description or an example, an example without code, a parameter
    without a description or metadata, a parameter named in SYNTAX but not documented (or the other way round), an
    unknown section or PlatyPS's '{{ Fill ... }}' placeholders are errors naming the file and the section.
.PARAMETER Path
    A folder of markdown pages (every *.md whose front matter says 'document type: cmdlet', or that has a
    '## SYNOPSIS' and '## PARAMETERS' section; about_ topics are skipped), or one or more .md files.
.PARAMETER OutputPath
    The MAML file to write, for example out/KtConnect/1.0.0/en-US/KtConnect.Cmdlets.dll-Help.xml. Its folder is
    created when needed.
.EXAMPLE
    ./tools/ConvertTo-MamlHelp.ps1 -Path docs/help -OutputPath out/help/KtConnect.Cmdlets.dll-Help.xml
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string[]] $Path,

    [Parameter(Mandatory)]
    [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$NsMaml = 'http://schemas.microsoft.com/maml/2004/10'
$NsCommand = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$NsDev = 'http://schemas.microsoft.com/maml/dev/2004/10'
$NsMSHelp = 'http://msdn.microsoft.com/mshelp'

$KnownSections = 'SYNOPSIS', 'SYNTAX', 'ALIASES', 'DESCRIPTION', 'EXAMPLES', 'PARAMETERS', 'INPUTS', 'OUTPUTS', 'NOTES', 'RELATED LINKS'
$CommonParameterNames = 'Debug', 'ErrorAction', 'ErrorVariable', 'InformationAction', 'InformationVariable', 'OutBuffer',
    'OutVariable', 'PipelineVariable', 'ProgressAction', 'Verbose', 'WarningAction', 'WarningVariable'

function Fail([string] $File, [string] $Section, [string] $Message) {
    throw "$(Split-Path -Leaf $File): [$Section] $Message"
}

#region Markdown

# One page as: Name, FrontMatter (hashtable), Sections (ordered: title -> @{ Lines; Subsections (list of @{ Title; Lines }) }).
function Read-HelpPage([string] $File) {
    $lines = [IO.File]::ReadAllLines($File)
    $i = 0
    $front = @{}
    if ($lines.Count -gt 0 -and $lines[0].Trim() -eq '---') {
        $i = 1
        while ($i -lt $lines.Count -and $lines[$i].Trim() -ne '---') {
            if ($lines[$i] -match '^\s*([^:#][^:]*):\s*(.*)$') { $front[$Matches[1].Trim()] = (ConvertFrom-YamlScalar $Matches[2]) }
            $i++
        }
        if ($i -ge $lines.Count) { Fail $File 'front matter' 'The YAML front matter is not closed by a --- line.' }
        $i++
    }

    $name = $null
    $sections = [ordered]@{}
    $section = $null
    $sub = $null
    $fence = $null
    for (; $i -lt $lines.Count; $i++) {
        $line = $lines[$i]
        if ($null -eq $fence -and $line -match '^\s{0,3}(```+|~~~+)') { $fence = $Matches[1] }
        elseif ($null -ne $fence -and $line.Trim() -eq $fence) { $fence = $null }
        elseif ($null -eq $fence -and $line -match '^(#{1,3})\s+(.+?)\s*#*\s*$') {
            $level = $Matches[1].Length
            $title = $Matches[2]
            if ($level -eq 1) {
                if ($name) { Fail $File $title "A second '# ' heading; a page documents one cmdlet ('$name')." }
                $name = $title
                $section = $null; $sub = $null
                continue
            }
            if ($level -eq 2) {
                if (-not $name) { Fail $File $title "The section comes before the page's '# <cmdlet name>' heading." }
                $key = $title.ToUpperInvariant()
                if ($key -notin $KnownSections) { Fail $File $title "Unknown section; expected one of: $($KnownSections -join ', ')." }
                if ($sections.Contains($key)) { Fail $File $key 'The section appears twice.' }
                $section = @{ Lines = [Collections.Generic.List[string]]::new(); Subsections = [Collections.Generic.List[object]]::new() }
                $sections[$key] = $section
                $sub = $null
                continue
            }
            if ($null -eq $section) { Fail $File $title "A '### ' heading outside any '## ' section." }
            $sub = @{ Title = $title; Lines = [Collections.Generic.List[string]]::new() }
            $section.Subsections.Add($sub)
            continue
        }
        if ($null -ne $sub) { $sub.Lines.Add($line) }
        elseif ($null -ne $section) { $section.Lines.Add($line) }
        elseif ($line.Trim()) {
            Fail $File ($name ?? 'page') "Text outside any '## ' section: '$($line.Trim())'."
        }
    }
    if ($null -ne $fence) { Fail $File 'page' "A code block ($fence) is not closed." }
    if (-not $name) { Fail $File 'page' "The page has no '# <cmdlet name>' heading." }
    [pscustomobject]@{ File = $File; Name = $name; FrontMatter = $front; Sections = $sections }
}

# Splits markdown lines into blocks: @{ Kind = 'text' | 'code'; Text; Info } (text blocks are paragraphs).
function Split-Blocks([string[]] $Lines) {
    $blocks = [Collections.Generic.List[object]]::new()
    $para = [Collections.Generic.List[string]]::new()
    $code = $null
    $fence = $null
    $info = ''
    $flush = {
        if ($para.Count) {
            $blocks.Add(@{ Kind = 'text'; Text = (Join-Paragraph $para); Info = '' })
            $para.Clear()
        }
    }
    foreach ($line in $Lines) {
        if ($null -eq $fence) {
            if ($line -match '^\s{0,3}(```+|~~~+)\s*(\S*)') {
                . $flush
                $fence = $Matches[1]; $info = $Matches[2]
                $code = [Collections.Generic.List[string]]::new()
            }
            elseif (-not $line.Trim()) { . $flush }
            else { $para.Add($line) }
        }
        elseif ($line.Trim() -eq $fence) {
            $blocks.Add(@{ Kind = 'code'; Text = ($code -join "`n"); Info = $info })
            $fence = $null
        }
        else { $code.Add($line) }
    }
    . $flush
    , $blocks
}

# Markdown soft line breaks become spaces; list items and hard breaks keep their own lines.
function Join-Paragraph([Collections.Generic.List[string]] $Lines) {
    $sb = [Text.StringBuilder]::new()
    foreach ($l in $Lines) {
        $t = $l.Trim()
        if ($sb.Length -eq 0) { $null = $sb.Append($t); continue }
        if ($t -match '^([-*+]|\d+[.)])\s' -or $l -match '\s{2,}$' -or $sb.ToString().EndsWith('\')) { $null = $sb.Append("`n").Append($t) }
        else { $null = $sb.Append(' ').Append($t) }
    }
    $sb.ToString()
}

function Get-Paragraphs([string[]] $Lines) {
    foreach ($b in (Split-Blocks $Lines)) { $b.Text }
}

function Assert-NoPlaceholder([string] $File, [string] $Section, [string] $Text) {
    if ($Text -match '\{\{\s*(Fill|Add|Insert)[^}]*\}\}') { Fail $File $Section "PlatyPS placeholder left in: '$($Matches[0])'." }
}

#endregion

#region YAML (the small subset PlatyPS writes in parameter blocks)

function ConvertFrom-YamlScalar([string] $Text) {
    $t = $Text.Trim()
    if ($t.Length -ge 2 -and (($t[0] -eq "'" -and $t[-1] -eq "'") -or ($t[0] -eq '"' -and $t[-1] -eq '"'))) {
        if ($t[0] -eq "'") { return $t.Substring(1, $t.Length - 2).Replace("''", "'") }
        return $t.Substring(1, $t.Length - 2).Replace('\"', '"').Replace('\\', '\')
    }
    $t
}

# Returns an ordered dictionary: scalars as strings, '[]' and '- x' lists as string arrays, '- Key: v' lists as arrays of dictionaries.
function ConvertFrom-SimpleYaml([string] $File, [string] $Section, [string] $Text) {
    $result = [ordered]@{}
    $key = $null
    $item = $null
    foreach ($raw in ($Text -split "`r?`n")) {
        if (-not $raw.Trim() -or $raw.TrimStart().StartsWith('#')) { continue }
        $indent = $raw.Length - $raw.TrimStart().Length
        $line = $raw.Trim()
        if ($indent -eq 0 -and $line -notmatch '^-' -and $line -match '^([^:]+):\s*(.*)$') {
            $key = $Matches[1].Trim()
            $value = $Matches[2]
            $item = $null
            if ($value.Trim() -eq '[]') { $result[$key] = [object[]]@() }
            elseif ($value.Trim() -match '^\[(.*)\]$') { $result[$key] = [object[]]@($Matches[1] -split ',' | ForEach-Object { ConvertFrom-YamlScalar $_ } | Where-Object { $_ -ne '' }) }
            elseif ($value.Trim()) { $result[$key] = ConvertFrom-YamlScalar $value }
            else { $result[$key] = [Collections.Generic.List[object]]::new() }
            continue
        }
        if ($null -eq $key -or $result[$key] -isnot [Collections.Generic.List[object]]) {
            Fail $File $Section "Cannot read the metadata line '$line'."
        }
        if ($line -match '^-\s*([A-Za-z][\w ]*):\s*(.*)$') {
            $item = [ordered]@{ $Matches[1].Trim() = (ConvertFrom-YamlScalar $Matches[2]) }
            $result[$key].Add($item)
        }
        elseif ($line -match '^-\s*(.*)$') {
            $item = $null
            $result[$key].Add((ConvertFrom-YamlScalar $Matches[1]))
        }
        elseif ($null -ne $item -and $line -match '^([A-Za-z][\w ]*):\s*(.*)$') {
            $item[$Matches[1].Trim()] = ConvertFrom-YamlScalar $Matches[2]
        }
        else { Fail $File $Section "Cannot read the metadata line '$line'." }
    }
    foreach ($k in @($result.Keys)) {
        if ($result[$k] -is [Collections.Generic.List[object]]) { $result[$k] = [object[]]$result[$k].ToArray() }
    }
    $result
}

function Test-True([object] $Value) { "$Value".Trim() -match '^(true|yes)' }

#endregion

#region Model

function Get-ShortTypeName([string] $TypeName) {
    if (-not $TypeName) { return 'Object' }
    $t = $TypeName -replace '`\d+', '' -replace '\[\[.*\]\]', ''
    if ($t -match '^System\.Nullable\[(.+)\]$') { $t = $Matches[1] }
    ($t -split '\.')[-1]
}

# One parameter: Name, Description (paragraphs), Type, DefaultValue, Globbing, Aliases, AcceptedValues, Sets (list of @{ Name; Position; Required; ByValue; ByPropertyName }).
function ConvertTo-HelpParameter([string] $File, [hashtable] $Sub) {
    $title = $Sub.Title
    if ($title -notmatch '^-(\w+)$') { Fail $File "PARAMETERS / $title" "A parameter heading must be '### -<Name>' (or '### CommonParameters')." }
    $pname = $Matches[1]
    $section = "PARAMETERS / -$pname"
    $blocks = Split-Blocks $Sub.Lines
    $yaml = @($blocks | Where-Object { $_.Kind -eq 'code' -and $_.Info -in 'yaml', 'yml' })
    if ($yaml.Count -ne 1) { Fail $File $section "Expected exactly one ```yaml metadata block, found $($yaml.Count)." }
    $desc = @($blocks | Where-Object { $_ -ne $yaml[0] } | ForEach-Object { $_.Text } | Where-Object { $_.Trim() })
    if (-not $desc) { Fail $File $section 'The parameter has no description.' }
    foreach ($d in $desc) { Assert-NoPlaceholder $File $section $d }
    $m = ConvertFrom-SimpleYaml $File $section $yaml[0].Text

    $get = { param($Keys) foreach ($k in $Keys) { if ($m.Contains($k)) { return , $m[$k] } } $null }
    $type = & $get 'Type'
    if (-not $type) { Fail $File $section "The metadata has no 'Type'." }

    $sets = [Collections.Generic.List[object]]::new()
    if ($m.Contains('ParameterSets')) {
        # PlatyPS 1.x
        foreach ($s in @($m['ParameterSets'])) {
            if ($s -isnot [Collections.IDictionary] -or -not $s.Contains('Name')) { Fail $File $section "ParameterSets entries need a 'Name'." }
            $sets.Add(@{
                    Name           = $s['Name']
                    Position       = if ($s.Contains('Position')) { "$($s['Position'])" } else { 'Named' }
                    Required       = $s.Contains('IsRequired') -and (Test-True $s['IsRequired'])
                    ByValue        = $s.Contains('ValueFromPipeline') -and (Test-True $s['ValueFromPipeline'])
                    ByPropertyName = $s.Contains('ValueFromPipelineByPropertyName') -and (Test-True $s['ValueFromPipelineByPropertyName'])
                    Remaining      = $s.Contains('ValueFromRemainingArguments') -and (Test-True $s['ValueFromRemainingArguments'])
                })
        }
    }
    elseif ($m.Contains('Parameter Sets')) {
        # PlatyPS 0.x: one Required/Position/pipeline for all the listed sets.
        $pipe = "$(& $get 'Accept pipeline input')"
        foreach ($n in ("$($m['Parameter Sets'])" -split ',')) {
            $sets.Add(@{
                    Name           = $n.Trim()
                    Position       = ("$(& $get 'Position')" -replace '^$', 'Named')
                    Required       = Test-True (& $get 'Required')
                    ByValue        = $pipe -match 'ByValue'
                    ByPropertyName = $pipe -match 'ByPropertyName'
                    Remaining      = $false
                })
        }
    }
    if (-not $sets.Count) { Fail $File $section "The metadata names no parameter set ('ParameterSets' or 'Parameter Sets')." }

    $aliases = & $get 'Aliases'
    $aliases = @(@($aliases) | ForEach-Object { "$_" -split ',' } | ForEach-Object { $_.Trim() } | Where-Object { $_ -and $_ -ne 'None' })
    $accepted = & $get 'AcceptedValues', 'Accepted values'
    $accepted = @(@($accepted) | ForEach-Object { "$_" -split ',' } | ForEach-Object { $_.Trim() } | Where-Object { $_ })
    $default = "$(& $get 'DefaultValue', 'Default value')"
    [pscustomobject]@{
        Name           = $pname
        Description    = $desc
        Type           = "$type"
        ShortType      = Get-ShortTypeName "$type"
        IsSwitch       = "$type" -match '(^|\.)SwitchParameter$'
        DefaultValue   = if ($default.Trim()) { $default } else { 'None' }
        Globbing       = Test-True (& $get 'SupportsWildcards', 'Accept wildcard characters')
        Aliases        = $aliases
        AcceptedValues = $accepted
        Sets           = $sets
    }
}

function ConvertTo-CommandHelp($Page) {
    $file = $Page.File
    $s = $Page.Sections
    $name = $Page.Name
    if ($Page.FrontMatter.Contains('title') -and $Page.FrontMatter['title'] -and $Page.FrontMatter['title'] -ne $name) {
        Fail $file 'front matter' "title '$($Page.FrontMatter['title'])' differs from the '# $name' heading."
    }
    if ($name -notmatch '^(\w+)-(\w+)$') { Fail $file $name "'$name' is not a Verb-Noun cmdlet name." }
    $verb = $Matches[1]; $noun = $Matches[2]

    foreach ($required in 'SYNOPSIS', 'SYNTAX', 'DESCRIPTION', 'EXAMPLES', 'PARAMETERS') {
        if (-not $s.Contains($required)) { Fail $file $required 'The section is missing.' }
    }

    $synopsis = @(Get-Paragraphs $s['SYNOPSIS'].Lines | Where-Object { $_.Trim() })
    if (-not $synopsis) { Fail $file 'SYNOPSIS' 'The synopsis is empty.' }
    Assert-NoPlaceholder $file 'SYNOPSIS' ($synopsis -join ' ')

    $description = @((Split-Blocks $s['DESCRIPTION'].Lines) | ForEach-Object { $_.Text } | Where-Object { $_.Trim() })
    if (-not $description) { Fail $file 'DESCRIPTION' 'The description is empty.' }
    Assert-NoPlaceholder $file 'DESCRIPTION' ($description -join ' ')

    # Parameters
    $parameters = [Collections.Generic.List[object]]::new()
    foreach ($sub in $s['PARAMETERS'].Subsections) {
        if ($sub.Title -eq 'CommonParameters') { continue }
        $p = ConvertTo-HelpParameter $file $sub
        if ($parameters | Where-Object Name -eq $p.Name) { Fail $file "PARAMETERS / -$($p.Name)" 'The parameter is documented twice.' }
        if ($p.Name -in $CommonParameterNames) { Fail $file "PARAMETERS / -$($p.Name)" 'A common parameter is not documented per cmdlet (it belongs to ### CommonParameters).' }
        $parameters.Add($p)
    }

    # Syntax: one item per '### <set>' with its code block; every parameter written there must be documented and
    # every documented parameter of the set must appear there.
    $syntaxItems = [Collections.Generic.List[object]]::new()
    $syntaxSubs = @($s['SYNTAX'].Subsections)
    if (-not $syntaxSubs) { Fail $file 'SYNTAX' "No '### <parameter set>' with a syntax code block." }
    $setNames = @($syntaxSubs | ForEach-Object { ($_.Title -replace '\s*\(Default\)\s*$', '').Trim() })
    foreach ($sub in $syntaxSubs) {
        $setName = ($sub.Title -replace '\s*\(Default\)\s*$', '').Trim()
        $section = "SYNTAX / $setName"
        $code = @((Split-Blocks $sub.Lines) | Where-Object Kind -eq 'code')
        if ($code.Count -ne 1) { Fail $file $section "Expected one code block with the set's syntax, found $($code.Count)." }
        $written = @([regex]::Matches($code[0].Text, '(?<![\w-])-(\w+)') | ForEach-Object { $_.Groups[1].Value } |
                Where-Object { $_ -notin $CommonParameterNames } | Select-Object -Unique)
        $inSet = @($parameters | Where-Object {
                $_.Sets | Where-Object { $_.Name -eq $setName -or $_.Name -eq '(All)' -or ($_.Name -eq '__AllParameterSets') -or ($setName -eq '__AllParameterSets' -and $setNames.Count -eq 1) }
            })
        foreach ($w in $written) {
            if (-not ($parameters | Where-Object Name -eq $w)) { Fail $file $section "-$w is in the syntax but not documented under PARAMETERS." }
            if (-not ($inSet | Where-Object Name -eq $w)) { Fail $file $section "-$w is in the syntax but its metadata does not list the parameter set '$setName'." }
        }
        foreach ($p in $inSet) {
            if ($p.Name -notin $written) { Fail $file $section "-$($p.Name) belongs to the set (by its metadata) but is missing from the syntax." }
        }
        $items = foreach ($p in $inSet) {
            $set = $p.Sets | Where-Object { $_.Name -eq $setName } | Select-Object -First 1
            if (-not $set) { $set = @($p.Sets)[0] }
            [pscustomobject]@{ Parameter = $p; Set = $set }
        }
        # As Get-Help lists them: positional ones first, in position order.
        $items = @($items | Sort-Object @{ Expression = { if ($_.Set.Position -match '^\d+$') { [int]$_.Set.Position } else { [int]::MaxValue } } }, @{ Expression = { [array]::IndexOf($written, $_.Parameter.Name) } })
        $syntaxItems.Add([pscustomobject]@{ Name = $setName; Items = $items })
    }
    foreach ($p in $parameters) {
        $listed = $false
        foreach ($si in $syntaxItems) { if ($si.Items | Where-Object { $_.Parameter.Name -eq $p.Name }) { $listed = $true } }
        if (-not $listed) { Fail $file "PARAMETERS / -$($p.Name)" 'The parameter appears in no SYNTAX parameter set.' }
    }

    # Examples
    $examples = [Collections.Generic.List[object]]::new()
    foreach ($sub in $s['EXAMPLES'].Subsections) {
        $section = "EXAMPLES / $($sub.Title)"
        $blocks = Split-Blocks $sub.Lines
        $code = @($blocks | Where-Object Kind -eq 'code' | ForEach-Object { $_.Text })
        if (-not ($code -join '').Trim()) { Fail $file $section 'The example has no code block.' }
        $remarks = @($blocks | Where-Object Kind -eq 'text' | ForEach-Object { $_.Text })
        foreach ($r in $remarks + $code) { Assert-NoPlaceholder $file $section $r }
        $examples.Add([pscustomobject]@{ Title = $sub.Title; Code = ($code -join "`n`n"); Remarks = $remarks })
    }
    if (-not $examples.Count) { Fail $file 'EXAMPLES' "No example ('### Example 1: ...' with a code block)." }
    if (@($s['EXAMPLES'].Lines | Where-Object { $_.Trim() }).Count) { Fail $file 'EXAMPLES' "Text before the first '### ' example would be lost." }

    # Inputs / outputs: '### <type>' and its description.
    $typeList = {
        param($Key)
        if (-not $s.Contains($Key)) { return , @() }
        if (@($s[$Key].Lines | Where-Object { $_.Trim() }).Count) { Fail $file $Key "Text outside a '### <type name>' entry would be lost." }
        , @($s[$Key].Subsections | ForEach-Object { [pscustomobject]@{ Type = $_.Title; Description = @(Get-Paragraphs $_.Lines | Where-Object { $_.Trim() }) } })
    }
    $inputs = & $typeList 'INPUTS'
    $outputs = & $typeList 'OUTPUTS'

    $notes = @()
    if ($s.Contains('NOTES')) {
        if ($s['NOTES'].Subsections.Count) { Fail $file 'NOTES' "'### ' headings in NOTES are not supported." }
        $notes = @(Get-Paragraphs $s['NOTES'].Lines | Where-Object { $_.Trim() })
    }

    $links = [Collections.Generic.List[object]]::new()
    $helpUri = if ($Page.FrontMatter.Contains('HelpUri')) { "$($Page.FrontMatter['HelpUri'])".Trim() } else { '' }
    if ($helpUri) { $links.Add([pscustomobject]@{ Text = 'Online Version:'; Uri = $helpUri }) }
    if ($s.Contains('RELATED LINKS')) {
        foreach ($line in $s['RELATED LINKS'].Lines) {
            $t = $line.Trim()
            if (-not $t) { continue }
            if ($t -match '^(?:[-*+]\s*)?\[([^\]]+)\]\(([^)]*)\)$') {
                # Links to other pages of these docs (.md) have no address Get-Help could open.
                $uri = if ($Matches[2] -match '^[a-z][a-z0-9+.-]*://') { $Matches[2] } else { '' }
                $links.Add([pscustomobject]@{ Text = $Matches[1]; Uri = $uri })
            }
            elseif ($t -match '^(?:[-*+]\s*)?(\S.*)$') { $links.Add([pscustomobject]@{ Text = $Matches[1]; Uri = '' }) }
        }
    }

    [pscustomobject]@{
        Name = $name; Verb = $verb; Noun = $noun; Synopsis = $synopsis; Description = $description
        Parameters = $parameters; SyntaxItems = $syntaxItems; Examples = $examples
        Inputs = $inputs; Outputs = $outputs; Notes = $notes; Links = $links
    }
}

#endregion

#region MAML

function Write-Paras([Xml.XmlWriter] $W, [string] $Element, [string[]] $Paragraphs) {
    # $Element is 'maml:description' or 'dev:remarks' etc.
    $prefix, $local = $Element -split ':'
    $ns = @{ maml = $NsMaml; dev = $NsDev; command = $NsCommand }[$prefix]
    $W.WriteStartElement($prefix, $local, $ns)
    $any = $false
    foreach ($p in $Paragraphs) {
        if ($null -eq $p) { continue }
        $W.WriteElementString('maml', 'para', $NsMaml, $p)
        $any = $true
    }
    if (-not $any) { $W.WriteElementString('maml', 'para', $NsMaml, '') }
    $W.WriteEndElement()
}

function Get-PipelineInput($Set) {
    $kinds = @(if ($Set.ByValue) { 'ByValue' }; if ($Set.ByPropertyName) { 'ByPropertyName' })
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

function Write-Parameter([Xml.XmlWriter] $W, $P, $Set, [switch] $ForSyntax) {
    $W.WriteStartElement('command', 'parameter', $NsCommand)
    $W.WriteAttributeString('required', $(if ($Set.Required) { 'true' } else { 'false' }))
    $W.WriteAttributeString('variableLength', 'true')
    $W.WriteAttributeString('globbing', $(if ($P.Globbing) { 'true' } else { 'false' }))
    $W.WriteAttributeString('pipelineInput', (Get-PipelineInput $Set))
    $W.WriteAttributeString('position', $(if ($Set.Position -match '^\d+$') { $Set.Position } else { 'named' }))
    $W.WriteAttributeString('aliases', $(if ($P.Aliases) { $P.Aliases -join ', ' } else { 'none' }))
    $W.WriteElementString('maml', 'name', $NsMaml, $P.Name)
    Write-Paras $W 'maml:description' $P.Description
    if ($ForSyntax -and $P.AcceptedValues) {
        $W.WriteStartElement('command', 'parameterValueGroup', $NsCommand)
        foreach ($v in $P.AcceptedValues) {
            $W.WriteStartElement('command', 'parameterValue', $NsCommand)
            $W.WriteAttributeString('required', 'false')
            $W.WriteAttributeString('variableLength', 'false')
            $W.WriteString($v)
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }
    elseif (-not ($ForSyntax -and $P.IsSwitch)) {
        $W.WriteStartElement('command', 'parameterValue', $NsCommand)
        $W.WriteAttributeString('required', $(if ($P.IsSwitch) { 'false' } else { 'true' }))
        $W.WriteAttributeString('variableLength', $(if ($P.Type -match '\[\]$') { 'true' } else { 'false' }))
        $W.WriteString($P.ShortType)
        $W.WriteEndElement()
    }
    $W.WriteStartElement('dev', 'type', $NsDev)
    $W.WriteElementString('maml', 'name', $NsMaml, $P.Type)
    $W.WriteElementString('maml', 'uri', $NsMaml, '')
    $W.WriteEndElement()
    $W.WriteElementString('dev', 'defaultValue', $NsDev, $P.DefaultValue)
    $W.WriteEndElement()
}

function Write-Command([Xml.XmlWriter] $W, $C) {
    $W.WriteStartElement('command', 'command', $NsCommand)
    $W.WriteAttributeString('xmlns', 'maml', $null, $NsMaml)
    $W.WriteAttributeString('xmlns', 'command', $null, $NsCommand)
    $W.WriteAttributeString('xmlns', 'dev', $null, $NsDev)
    $W.WriteAttributeString('xmlns', 'MSHelp', $null, $NsMSHelp)

    $W.WriteStartElement('command', 'details', $NsCommand)
    $W.WriteElementString('command', 'name', $NsCommand, $C.Name)
    $W.WriteElementString('command', 'verb', $NsCommand, $C.Verb)
    $W.WriteElementString('command', 'noun', $NsCommand, $C.Noun)
    Write-Paras $W 'maml:description' $C.Synopsis
    $W.WriteEndElement()

    Write-Paras $W 'maml:description' $C.Description

    $W.WriteStartElement('command', 'syntax', $NsCommand)
    foreach ($si in $C.SyntaxItems) {
        $W.WriteStartElement('command', 'syntaxItem', $NsCommand)
        $W.WriteElementString('maml', 'name', $NsMaml, $C.Name)
        foreach ($item in $si.Items) { Write-Parameter $W $item.Parameter $item.Set -ForSyntax }
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'parameters', $NsCommand)
    foreach ($p in ($C.Parameters | Sort-Object Name)) {
        # The first set's position and pipeline input; required only when required in every set.
        $first = @($p.Sets)[0]
        $set = @{
            Required       = -not ($p.Sets | Where-Object { -not $_.Required })
            Position       = $first.Position
            ByValue        = [bool]($p.Sets | Where-Object ByValue)
            ByPropertyName = [bool]($p.Sets | Where-Object ByPropertyName)
        }
        Write-Parameter $W $p $set
    }
    $W.WriteEndElement()

    foreach ($kind in @(@('inputTypes', 'inputType', $C.Inputs), @('returnValues', 'returnValue', $C.Outputs))) {
        $W.WriteStartElement('command', $kind[0], $NsCommand)
        foreach ($t in $kind[2]) {
            $W.WriteStartElement('command', $kind[1], $NsCommand)
            $W.WriteStartElement('dev', 'type', $NsDev)
            $W.WriteElementString('maml', 'name', $NsMaml, $t.Type)
            $W.WriteEndElement()
            Write-Paras $W 'maml:description' $t.Description
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }

    if ($C.Notes) {
        $W.WriteStartElement('maml', 'alertSet', $NsMaml)
        $W.WriteStartElement('maml', 'alert', $NsMaml)
        foreach ($n in $C.Notes) { $W.WriteElementString('maml', 'para', $NsMaml, $n) }
        $W.WriteEndElement()
        $W.WriteEndElement()
    }

    $W.WriteStartElement('command', 'examples', $NsCommand)
    foreach ($e in $C.Examples) {
        $W.WriteStartElement('command', 'example', $NsCommand)
        $W.WriteElementString('maml', 'title', $NsMaml, "--------- $($e.Title) ---------")
        $W.WriteElementString('dev', 'code', $NsDev, $e.Code)
        Write-Paras $W 'dev:remarks' $e.Remarks
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'relatedLinks', $NsCommand)
    foreach ($l in $C.Links) {
        $W.WriteStartElement('maml', 'navigationLink', $NsMaml)
        $W.WriteElementString('maml', 'linkText', $NsMaml, $l.Text)
        $W.WriteElementString('maml', 'uri', $NsMaml, $l.Uri)
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteEndElement()
}

#endregion

$files = foreach ($p in $Path) {
    $resolved = Resolve-Path -LiteralPath $p
    foreach ($r in $resolved) {
        if (Test-Path -LiteralPath $r -PathType Container) { Get-ChildItem -LiteralPath $r -Filter '*.md' -File | Sort-Object Name | ForEach-Object FullName }
        else { $r.ProviderPath }
    }
}

$commands = [Collections.Generic.List[object]]::new()
foreach ($f in $files) {
    $leaf = Split-Path -Leaf $f
    if ($leaf -like 'about_*') { continue }
    $text = [IO.File]::ReadAllText($f)
    $isCmdlet = $text -match '(?m)^document type:\s*cmdlet\s*$' -or ($text -match '(?m)^## SYNOPSIS' -and $text -match '(?m)^## PARAMETERS')
    if (-not $isCmdlet) { Write-Verbose "Skipping $leaf (not a cmdlet page)."; continue }
    $page = Read-HelpPage $f
    $command = ConvertTo-CommandHelp $page
    if ([IO.Path]::GetFileNameWithoutExtension($f) -ne $command.Name) { Fail $f $command.Name "The file name does not match the cmdlet name '$($command.Name)'." }
    if ($commands | Where-Object Name -eq $command.Name) { Fail $f $command.Name 'The cmdlet is documented by two pages.' }
    $commands.Add($command)
    Write-Verbose "$leaf -> $($command.Name): $($command.Parameters.Count) parameters, $($command.SyntaxItems.Count) parameter sets, $($command.Examples.Count) examples."
}
if (-not $commands.Count) { throw "No cmdlet help pages found in $($Path -join ', ')." }

$outFull = [IO.Path]::GetFullPath($OutputPath, (Get-Location).ProviderPath)
$null = New-Item -ItemType Directory -Force -Path (Split-Path -Parent $outFull)
$settings = [Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.IndentChars = '  '
$settings.Encoding = [Text.UTF8Encoding]::new($true)
$settings.NewLineChars = "`n"
$writer = [Xml.XmlWriter]::Create($outFull, $settings)
try {
    $writer.WriteStartDocument()
    $writer.WriteStartElement('helpItems', 'http://msh')
    $writer.WriteAttributeString('schema', 'maml')
    foreach ($c in $commands) { Write-Command $writer $c }
    $writer.WriteEndElement()
    $writer.WriteEndDocument()
}
finally {
    $writer.Dispose()
}
Write-Verbose "Wrote help for $($commands.Count) cmdlets to $outFull."
Get-Item -LiteralPath $outFull
